"""Picasa's face tags: ``.picasa.ini`` next to the photos, names from its contacts.

Picasa writes, per folder, ``[IMG_1.jpg]`` / ``faces=rect64(3f845bcb59418507),8e62...;...``:
the box is four 16-bit numbers (left, top, right, bottom, of 65535) and the id names a
contact, listed in the same file's ``[Contacts2]`` section (``id=Name;;``) or in a
``contacts.xml`` (``<contact id="..." name="..."/>``) kept with the photos.
"""

from __future__ import annotations

import configparser
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

from faceapp.engine.xmp_faces import Region

INI_NAMES = (".picasa.ini", "Picasa.ini")  # Picasa 3 hides it; older versions did not
CONTACTS_NAME = "contacts.xml"
_FACE = re.compile(r"rect64\(([0-9a-fA-F]{1,16})\),([0-9a-fA-F]+)")
UNKNOWN_ID = "ffffffffffffffff"


class _CaseKeepingParser(configparser.RawConfigParser):
    """Keeps the case of option names (contact ids); the default lower-cases them."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _read_ini(path: Path) -> configparser.RawConfigParser | None:
    parser = _CaseKeepingParser(strict=False, interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, configparser.Error):
        return None
    return parser


def _contacts_xml(path: Path) -> dict[str, str]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    return {
        c.get("id", ""): c.get("name", "").strip()
        for c in root.iter("contact")
        if c.get("id") and c.get("name")
    }


@lru_cache(maxsize=64)
def _folder(ini_path: Path, stamp: tuple) -> tuple[dict[str, str], dict[str, str]]:
    """(file name -> faces value, contact id -> name) of one folder; cached per file times."""
    folder = ini_path.parent
    ini = _read_ini(ini_path)
    if ini is None:
        return {}, {}
    contacts: dict[str, str] = {}
    for root in {folder, *stamp[1]}:
        contacts.update(_contacts_xml(Path(root) / CONTACTS_NAME))
    if ini.has_section("Contacts2"):
        for cid, value in ini.items("Contacts2"):
            name = value.split(";")[0].strip()
            if name:
                contacts[cid] = name
    faces = {s: ini.get(s, "faces") for s in ini.sections() if ini.has_option(s, "faces")}
    return faces, contacts


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def read(photo: Path, root: Path | None = None) -> list[Region]:
    """The Picasa face regions of one photo (normalised boxes of the stored image)."""
    folder = photo.parent
    ini = next((folder / n for n in INI_NAMES if (folder / n).is_file()), None)
    if ini is None:
        return []
    extra = (str(root),) if root is not None else ()
    stamp = (_stamp(ini), extra, *(_stamp(Path(r) / CONTACTS_NAME) for r in (folder, *extra)))
    faces, contacts = _folder(ini, stamp)
    out = []
    for rect, cid in _FACE.findall(faces.get(photo.name, "")):
        name = contacts.get(cid)
        if cid == UNKNOWN_ID or not name:
            continue
        v = int(rect, 16)
        x1, y1, x2, y2 = ((v >> s) & 0xFFFF for s in (48, 32, 16, 0))
        if x2 > x1 and y2 > y1:
            out.append(Region(name, (x1 / 65535, y1 / 65535, x2 / 65535, y2 / 65535), "picasa"))
    return out
