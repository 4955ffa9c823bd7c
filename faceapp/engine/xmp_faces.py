"""Face tags in XMP: read the forms other programs write, write the ones they read.

Read: MWG Regions (``mwg-rs:Regions``, digiKam, Lightroom, exiftool; ``stArea`` x/y is
the centre), Microsoft People Tags (``MP:RegionInfo``, ``MPReg:Rectangle`` x/y is the
top-left corner), and names without a box (``Iptc4xmpExt:PersonInImage``, digiKam
``TagsList`` ``People/...``). Write: all four, for the faces the user confirmed.

Boxes here are normalised (0..1) ``x1, y1, x2, y2`` of the image as the region's
writer saw it (:attr:`XmpTags.applied_to` says which size that was); turning them into
display pixels is :mod:`faceapp.engine.face_tags`' job.

Regions this app wrote carry ``fa:Origin="Face Album"``, so a later write replaces
them and keeps everyone else's. XMP is RDF with several equivalent spellings (struct
fields as attributes or elements, ``rdf:parseType="Resource"`` or a nested
``rdf:Description``); the readers below accept each of them.
"""

from __future__ import annotations

import contextlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from faceapp.errors import FaceAppError

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "fa": "http://ns.face-album.org/xmp/1.0/",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

ORIGIN = "Face Album"  # fa:Origin of the regions and names this app wrote
PEOPLE_TAG = "People/"  # digiKam's tag tree for people
MAX_XMP_BYTES = 4 << 20  # a bigger packet is not a photo's metadata


class XmpError(FaceAppError):
    """An XMP packet that cannot be read; ``str(err)`` is a short reason."""


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


@dataclass(frozen=True)
class Region:
    """A named face: a normalised box (x1, y1, x2, y2) or None for a name without one."""

    name: str
    box: tuple[float, float, float, float] | None
    source: str  # "mwg", "mp", "person-in-image", "digikam"
    ours: bool = False


@dataclass
class XmpTags:
    regions: list[Region] = field(default_factory=list)
    applied_to: tuple[int, int] | None = None  # MWG AppliedToDimensions (w, h) in pixels


# -- reading the RDF spellings ------------------------------------------------------------


def _value(node: ET.Element, name: str) -> str | None:
    """A simple property or struct field, as an attribute or a child element."""
    q = _q(name)
    if q in node.attrib:
        return node.attrib[q]
    child = node.find(q)
    if child is None:
        return None
    alt = child.find(f"{_q('rdf:Alt')}/{_q('rdf:li')}")  # a language alternative
    text = alt.text if alt is not None else child.text
    return (text or "").strip()


def _struct(node: ET.Element | None, name: str) -> ET.Element | None:
    """The element holding a struct's fields (parseType Resource or rdf:Description)."""
    if node is None:
        return None
    child = node.find(_q(name))
    if child is None:
        return None
    inner = child.find(_q("rdf:Description"))
    return inner if inner is not None else child


def _items(node: ET.Element | None, name: str) -> list[ET.Element]:
    """The members of an array property (rdf:Bag, Seq or Alt), struct members unwrapped."""
    if node is None:
        return []
    child = node.find(_q(name))
    if child is None:
        return []
    out = []
    for container in child:
        for li in container.findall(_q("rdf:li")):
            inner = li.find(_q("rdf:Description"))
            out.append(inner if inner is not None else li)
    return out


def _descriptions(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(_q("rdf:Description")))


def _top(root: ET.Element, name: str) -> ET.Element | None:
    """The first top-level rdf:Description that has property ``name``."""
    for desc in _descriptions(root):
        if desc.find(_q(name)) is not None:
            return desc
    return None


def _float(text: str | None) -> float | None:
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) < 1e6 else None  # not NaN, not absurd


def _clip_box(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    x1, x2 = max(0.0, min(1.0, x1)), max(0.0, min(1.0, x2))
    y1, y2 = max(0.0, min(1.0, y1)), max(0.0, min(1.0, y2))
    return x1, y1, x2, y2


def parse(xmp: bytes) -> ET.Element:
    if len(xmp) > MAX_XMP_BYTES:
        raise XmpError(f"XMP larger than {MAX_XMP_BYTES >> 20} MB")
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "start-ns"))
    try:
        parser.feed(xmp.strip(b"\0 \t\r\n"))
        parser.close()
    except ET.ParseError as exc:
        raise XmpError(f"unreadable XMP ({exc})") from None
    # only "start" (an element) and "start-ns" (a (prefix, uri) pair) were asked for
    events = cast(Iterator[tuple[str, "ET.Element | tuple[str, str]"]], parser.read_events())
    root: ET.Element | None = None
    for event, item in events:
        if event == "start" and root is None and isinstance(item, ET.Element):
            root = item
        elif event == "start-ns" and isinstance(item, tuple):
            # keep other programs' prefixes when the packet is written again (not ns0, ns1)
            prefix, uri = item
            if prefix and uri not in NS.values() and not re.fullmatch(r"ns\d+", prefix):
                with contextlib.suppress(ValueError):
                    ET.register_namespace(prefix, uri)
    if root is None:
        raise XmpError("unreadable XMP (empty)")
    return root


def read(xmp: bytes) -> XmpTags:
    """The face tags of one XMP packet (embedded or a sidecar's whole content)."""
    root = parse(xmp)
    tags = XmpTags()
    regions = _struct(_top(root, "mwg-rs:Regions"), "mwg-rs:Regions")
    dims = _struct(regions, "mwg-rs:AppliedToDimensions")
    if dims is not None:
        w, h = _float(_value(dims, "stDim:w")), _float(_value(dims, "stDim:h"))
        if w and h and w > 0 and h > 0:
            tags.applied_to = (round(w), round(h))
    for item in _items(regions, "mwg-rs:RegionList"):
        name = (_value(item, "mwg-rs:Name") or "").strip()
        kind = (_value(item, "mwg-rs:Type") or "Face").strip()
        area = _struct(item, "mwg-rs:Area")
        if not name or kind != "Face" or area is None:
            continue
        unit = (_value(area, "stArea:unit") or "normalized").strip()
        x, y = _float(_value(area, "stArea:x")), _float(_value(area, "stArea:y"))
        w, h = _float(_value(area, "stArea:w")), _float(_value(area, "stArea:h"))
        if unit != "normalized" or x is None or y is None or w is None or h is None:
            continue
        if w <= 0 or h <= 0:
            continue
        box = _clip_box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        tags.regions.append(Region(name, box, "mwg", _value(item, "fa:Origin") == ORIGIN))
    info = _struct(_top(root, "MP:RegionInfo"), "MP:RegionInfo")
    for item in _items(info, "MPRI:Regions"):
        name = (_value(item, "MPReg:PersonDisplayName") or "").strip()
        parts = [_float(p) for p in (_value(item, "MPReg:Rectangle") or "").split(",")]
        if not name:
            continue
        nums = [p for p in parts if p is not None]
        mp_box = None
        if len(parts) == 4 and len(nums) == 4 and nums[2] > 0 and nums[3] > 0:
            x, y, w, h = nums
            mp_box = _clip_box(x, y, x + w, y + h)
        tags.regions.append(Region(name, mp_box, "mp", _value(item, "fa:Origin") == ORIGIN))
    ours = set(_names(_top(root, "fa:Names"), "fa:Names"))
    for name in _names(_top(root, "Iptc4xmpExt:PersonInImage"), "Iptc4xmpExt:PersonInImage"):
        tags.regions.append(Region(name, None, "person-in-image", name in ours))
    for tag in _names(_top(root, "digiKam:TagsList"), "digiKam:TagsList"):
        if tag.startswith(PEOPLE_TAG) and tag.rstrip("/") != PEOPLE_TAG.rstrip("/"):
            name = tag.rstrip("/").rsplit("/", 1)[-1].strip()
            if name and name != "Unknown":  # digiKam's own "People/Unknown" placeholder
                tags.regions.append(Region(name, None, "digikam", name in ours))
    return tags


def _names(desc: ET.Element | None, name: str) -> list[str]:
    return [t for li in _items(desc, name) if (t := (li.text or "").strip())]


# -- writing ------------------------------------------------------------------------------

EMPTY = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
    b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
)


@dataclass(frozen=True)
class NewRegion:
    """A confirmed face to write: its name and normalised box in the writer's frame."""

    name: str
    box: tuple[float, float, float, float]


def _sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, _q(name), {_q(k.replace("__", ":")): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _resource(parent: ET.Element, name: str) -> ET.Element:
    return _sub(parent, name, **{"rdf__parseType": "Resource"})


def _array(parent: ET.Element, name: str, kind: str = "rdf:Bag") -> ET.Element:
    return _sub(_sub(parent, name), kind)


def _take(
    root: ET.Element, name: str, list_name: str
) -> tuple[list[ET.Element], ET.Element | None]:
    """Remove property ``name`` everywhere; return its foreign list items and struct."""
    kept: list[ET.Element] = []
    struct: ET.Element | None = None
    for desc in _descriptions(root):
        for prop in desc.findall(_q(name)):
            inner = prop.find(_q("rdf:Description"))
            holder = inner if inner is not None else prop
            struct = struct if struct is not None else holder
            array = holder.find(_q(list_name))
            for container in array if array is not None else []:
                for li in container.findall(_q("rdf:li")):
                    item = li.find(_q("rdf:Description"))
                    if _value(item if item is not None else li, "fa:Origin") != ORIGIN:
                        kept.append(li)
            desc.remove(prop)
    return kept, struct


def _take_names(root: ET.Element, name: str) -> list[str]:
    out: list[str] = []
    for desc in _descriptions(root):
        for prop in desc.findall(_q(name)):
            out += [t for li in prop.iter(_q("rdf:li")) if (t := (li.text or "").strip())]
            desc.remove(prop)
    return out


def _fmt(v: float) -> str:
    return f"{v:.6f}"


def merge(
    existing: bytes | None,
    regions: list[NewRegion],
    applied_to: tuple[int, int],
) -> bytes:
    """``existing`` XMP with this app's face tags replaced by ``regions``.

    Regions and names other programs wrote stay as they were; names this app wrote
    before and no longer confirms are removed. ``applied_to`` is the (w, h) the boxes
    are normalised to (the AppliedToDimensions of the region list).
    """
    root = parse(existing) if existing else parse(EMPTY)
    if root.tag != _q("x:xmpmeta"):
        wrapper = ET.Element(_q("x:xmpmeta"))
        wrapper.append(root)
        root = wrapper
    rdf = root.find(_q("rdf:RDF"))
    if rdf is None:
        rdf = _sub(root, "rdf:RDF")
    foreign_mwg, old_regions = _take(root, "mwg-rs:Regions", "mwg-rs:RegionList")
    foreign_mp, _ = _take(root, "MP:RegionInfo", "MPRI:Regions")
    ours_before = set(_take_names(root, "fa:Names"))
    people = [n for n in _take_names(root, "Iptc4xmpExt:PersonInImage") if n not in ours_before]
    tags = [
        t
        for t in _take_names(root, "digiKam:TagsList")
        if not (t.startswith(PEOPLE_TAG) and t[len(PEOPLE_TAG) :] in ours_before)
    ]
    names = list(dict.fromkeys(r.name for r in regions))
    desc = _sub(rdf, "rdf:Description", **{"rdf__about": ""})
    if regions or foreign_mwg:
        mwg = _resource(desc, "mwg-rs:Regions")
        dims = _resource(mwg, "mwg-rs:AppliedToDimensions")
        old_dims = _struct(old_regions, "mwg-rs:AppliedToDimensions") if foreign_mwg else None
        w, h = applied_to
        if old_dims is not None:  # the foreign regions are relative to these
            w = round(_float(_value(old_dims, "stDim:w")) or w)
            h = round(_float(_value(old_dims, "stDim:h")) or h)
        _sub(dims, "stDim:w", str(w))
        _sub(dims, "stDim:h", str(h))
        _sub(dims, "stDim:unit", "pixel")
        bag = _array(mwg, "mwg-rs:RegionList")
        bag.extend(foreign_mwg)
        for r in regions:
            li = _sub(bag, "rdf:li", **{"rdf__parseType": "Resource"})
            area = _resource(li, "mwg-rs:Area")
            x1, y1, x2, y2 = r.box
            for key, v in (("x", (x1 + x2) / 2), ("y", (y1 + y2) / 2), ("w", x2 - x1)):
                _sub(area, f"stArea:{key}", _fmt(v))
            _sub(area, "stArea:h", _fmt(y2 - y1))
            _sub(area, "stArea:unit", "normalized")
            _sub(li, "mwg-rs:Name", r.name)
            _sub(li, "mwg-rs:Type", "Face")
            _sub(li, "fa:Origin", ORIGIN)
    if regions or foreign_mp:
        info = _resource(desc, "MP:RegionInfo")
        bag = _array(info, "MPRI:Regions")
        bag.extend(foreign_mp)
        for r in regions:
            li = _sub(bag, "rdf:li", **{"rdf__parseType": "Resource"})
            x1, y1, x2, y2 = r.box
            rect = ", ".join(_fmt(v) for v in (x1, y1, x2 - x1, y2 - y1))
            _sub(li, "MPReg:Rectangle", rect)
            _sub(li, "MPReg:PersonDisplayName", r.name)
            _sub(li, "fa:Origin", ORIGIN)
    people_tags = [PEOPLE_TAG + n for n in names]
    for prop, values, kind in (
        ("Iptc4xmpExt:PersonInImage", list(dict.fromkeys(people + names)), "rdf:Bag"),
        ("digiKam:TagsList", list(dict.fromkeys(tags + people_tags)), "rdf:Seq"),
        ("fa:Names", names, "rdf:Bag"),
    ):
        if values:
            array = _array(desc, prop, kind)
            for value in values:
                _sub(array, "rdf:li", value)
    for empty in [d for d in rdf.findall(_q("rdf:Description")) if not len(d) and d is not desc]:
        if not [k for k in empty.attrib if k != _q("rdf:about")]:
            rdf.remove(empty)
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)
