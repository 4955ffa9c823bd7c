"""Face tags other programs wrote, read while scanning and applied to the library.

Where tags come from (all of them are read, the first copy of a face wins): the XMP
embedded in the photo, the sidecars ``IMG_1.jpg.xmp`` (digiKam, darktable, this app)
and ``IMG_1.xmp`` (Lightroom), and Picasa's ``.picasa.ini``.

Orientation: a region is relative to the image *as stored*, before the EXIF rotation
(MWG guidelines; digiKam, Lightroom, Picasa and exiftool all write it so, which is why
viewers that ignore this misplace tags on portrait phone photos). A writer that used
the displayed image instead is recognised by its MWG ``AppliedToDimensions``: its
aspect ratio then matches the rotated size, not the stored one.

Applying: a tagged box is matched to a detected face by overlap (IoU >= MATCH_IOU,
best pairs first); the face is confirmed under the tag's name (a new person if
nobody has that name). A box no detected face overlaps becomes a face added by hand.
A name without a box goes to the one unnamed face when there is exactly one. The
user's own labels always win: a tag that disagrees with one (another name, a "not
this person", the person already on another face of the photo) is stored as a
conflict and listed, never applied.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from faceapp.engine import picasa, xmp_faces
from faceapp.engine.boxes import iou
from faceapp.engine.image_modes import orientation_of
from faceapp.engine.image_open import PHOTO_FORMATS, ImageError
from faceapp.engine.images import DecodedImage, load_image
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import NewFace
from faceapp.engine.people import _clean_name, _person_by_name
from faceapp.engine.xmp_faces import Region, XmpError

if TYPE_CHECKING:
    from faceapp.engine.pipeline import Analyzer

MATCH_IOU = 0.3  # tag boxes of other programs are looser than MTCNN's; 0.3 still pairs 1:1
SIDECAR_SUFFIX = ".xmp"

CONFLICTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tag_conflicts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_id   INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    face_id    INTEGER REFERENCES faces(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,                -- the name the file gives
    reason     TEXT NOT NULL,
    source     TEXT NOT NULL,                -- where the tag was read
    created_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Conflict:
    id: int
    photo: str
    face_id: int | None
    name: str
    reason: str
    source: str


@dataclass
class TagImport:
    """What reading the photos' face tags did during one scan."""

    photos: int = 0  # photos that carried face tags
    confirmed: int = 0  # detected faces confirmed under a tag's name
    added: int = 0  # faces added from a tagged box no detected face matched
    unplaced: int = 0  # names without a box that could not be put on one face
    conflicts: int = 0  # tags that disagree with the user's labels (listed, not applied)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "photos": self.photos,
            "confirmed": self.confirmed,
            "added": self.added,
            "unplaced": self.unplaced,
            "conflicts": self.conflicts,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
        }


# -- geometry -----------------------------------------------------------------------------

# EXIF orientation -> where a stored point (u, v) (normalised) appears when displayed
_TO_DISPLAY = {
    1: lambda u, v: (u, v),
    2: lambda u, v: (1 - u, v),
    3: lambda u, v: (1 - u, 1 - v),
    4: lambda u, v: (u, 1 - v),
    5: lambda u, v: (v, u),
    6: lambda u, v: (1 - v, u),
    7: lambda u, v: (1 - v, 1 - u),
    8: lambda u, v: (v, 1 - u),
}
_INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}

Box = tuple[float, float, float, float]


def _map(box: Box, fn) -> Box:
    (ax, ay), (bx, by) = fn(box[0], box[1]), fn(box[2], box[3])
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


def stored_to_display(box: Box, orientation: int) -> Box:
    """A normalised box of the stored image, in the displayed (EXIF-rotated) image."""
    return _map(box, _TO_DISPLAY.get(orientation, _TO_DISPLAY[1]))


def display_to_stored(box: Box, orientation: int) -> Box:
    return _map(box, _TO_DISPLAY[_INVERSE.get(orientation, 1)])


@dataclass(frozen=True)
class FileFrame:
    """What the tags of one file need: its XMP, stored size and EXIF orientation."""

    xmp: bytes | None
    stored: tuple[int, int]
    orientation: int

    @property
    def display(self) -> tuple[int, int]:
        w, h = self.stored
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)

    def region_orientation(self, applied_to: tuple[int, int] | None) -> int:
        """The rotation to apply to a writer's boxes (1 when it used the displayed image)."""
        if applied_to is None or self.orientation not in (5, 6, 7, 8):
            return self.orientation
        ratio = applied_to[0] / applied_to[1]
        sw, sh = self.stored
        return self.orientation if abs(ratio - sw / sh) <= abs(ratio - sh / sw) else 1


def file_frame(path: Path) -> FileFrame:
    """Read a photo's header (no pixels): embedded XMP, stored size, orientation."""
    try:
        with Image.open(path, formats=PHOTO_FORMATS) as im:
            xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
            if isinstance(xmp, str):
                xmp = xmp.encode("utf-8")
            if im.format == "HEIF":  # pillow-heif shows it rotated already
                orientation = int(im.info.get("original_orientation") or 1)
                w, h = im.size
                stored = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
            else:
                orientation, stored = orientation_of(im), im.size
    except Exception as exc:  # the scan decoded it; a header re-read failing is rare
        raise XmpError(f"cannot read the photo's metadata ({exc})") from None
    return FileFrame(xmp or None, stored, orientation if 1 <= orientation <= 8 else 1)


def sidecars(photo: Path) -> list[Path]:
    """The sidecar names other programs use: ``IMG_1.jpg.xmp`` first, then ``IMG_1.xmp``."""
    return [photo.with_name(photo.name + SIDECAR_SUFFIX), photo.with_suffix(SIDECAR_SUFFIX)]


def read_tags(path: Path, root: Path | None = None) -> tuple[list[Region], list[str]]:
    """Every face tag of a photo, boxes as normalised boxes of the displayed image.

    Returns (regions, problems); a damaged sidecar is a problem, not a failure.
    """
    problems: list[str] = []
    frame = file_frame(path)
    found: list[Region] = []

    def add(regions: list[Region], orientation: int) -> None:
        for r in regions:
            box = None if r.box is None else stored_to_display(r.box, orientation)
            found.append(Region(r.name, box, r.source, r.ours))

    packets = [("embedded XMP", frame.xmp)]
    for sidecar in sidecars(path):
        if sidecar.is_file():
            try:
                packets.append((sidecar.name, sidecar.read_bytes()))
            except OSError as exc:
                problems.append(f"{sidecar.name}: {exc.strerror or exc}")
    for label, packet in packets:
        if not packet:
            continue
        try:
            tags = xmp_faces.read(packet)
        except XmpError as exc:
            problems.append(f"{label}: {exc}")
            continue
        mwg = [r for r in tags.regions if r.source == "mwg"]
        add(mwg, frame.region_orientation(tags.applied_to))
        add([r for r in tags.regions if r.source != "mwg"], frame.orientation)
    add(picasa.read(path, root), frame.orientation)
    return _distinct(found), problems


def _distinct(regions: list[Region]) -> list[Region]:
    """One region per face: the same name on overlapping boxes (MWG + MP copies) once."""
    out: list[Region] = []
    for r in regions:
        key = r.name.casefold()
        same = [o for o in out if o.name.casefold() == key]
        if r.box is None and same:
            continue
        if r.box is not None and any(o.box is not None and iou(o.box, r.box) > 0.3 for o in same):
            continue
        out = [o for o in out if not (o.box is None and o.name.casefold() == key)] + [r]
    return out


# -- applying -----------------------------------------------------------------------------


def _ensure_table(c: sqlite3.Connection) -> None:
    c.execute(CONFLICTS_SCHEMA)


def _conflict(
    c: sqlite3.Connection, photo_id: int, face_id: int | None, r: Region, reason: str
) -> None:
    c.execute(
        "INSERT INTO tag_conflicts(photo_id, face_id, name, reason, source, created_at)"
        " VALUES (?,?,?,?,?,?)",
        (photo_id, face_id, r.name, reason, r.source, time.time()),
    )


def _confirm(c: sqlite3.Connection, photo_id: int, face_id: int, r: Region) -> str:
    """Confirm a face under the region's name unless the user's labels say otherwise.

    Returns "confirmed", "conflict" (stored for the user to see) or "already".
    """
    name = _clean_name(r.name)
    person = _person_by_name(c, name)
    face_person = c.execute("SELECT person_id FROM faces WHERE id = ?", (face_id,)).fetchone()[0]
    if person is not None and face_person == person:
        return "already"
    reason = None
    if face_person is not None:
        other = c.execute("SELECT name FROM people WHERE id = ?", (face_person,)).fetchone()[0]
        reason = f"you named this face {other}"
    elif (
        person is not None
        and c.execute(
            "SELECT 1 FROM rejections WHERE face_id = ? AND person_id = ?", (face_id, person)
        ).fetchone()
    ):
        reason = f"you said this face is not {name}"
    elif (
        person is not None
        and c.execute(
            "SELECT 1 FROM faces WHERE photo_id = ? AND person_id = ? AND id != ?",
            (photo_id, person, face_id),
        ).fetchone()
    ):
        reason = f"{name} is already on another face of this photo"
    if reason is not None:
        _conflict(c, photo_id, face_id, r, reason)
        return "conflict"
    if person is None:
        person = c.execute(
            "INSERT INTO people(name, created_at) VALUES (?, ?)", (name, time.time())
        ).lastrowid
        if person is None:
            raise LibraryError(f"could not add the person {name}")
    c.execute("UPDATE faces SET person_id = ?, cluster_id = NULL WHERE id = ?", (person, face_id))
    return "confirmed"


MIN_SIDE = 8.0  # display px: a smaller tagged box holds nothing to recognise


def face_from_box(analyzer: Analyzer, decoded: DecodedImage, box: Sequence[float]) -> NewFace:
    """A tagged face the detector missed, cropped and embedded exactly like a detected one.

    It has no landmarks (``[]``) and probability 1.0 (a person said it is a face), and
    is marked as added by hand, so a rescan of the photo keeps it.
    """
    from faceapp.engine.detect import FaceBox  # torch: only when a face is added
    from faceapp.engine.scan_analyze import crop_to_jpeg

    x1, y1 = max(0.0, float(box[0])), max(0.0, float(box[1]))
    x2, y2 = min(float(decoded.width), float(box[2])), min(float(decoded.height), float(box[3]))
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        raise LibraryError(f"a face box must be at least {MIN_SIDE:.0f} pixels on each side")
    face = FaceBox((x1, y1, x2, y2), np.zeros((0, 2), np.float32), 1.0)
    crop = analyzer.detector.crops(decoded, [face])
    vector = analyzer.embedder.embed(crop)[0]
    return NewFace(face.box, [], 1.0, crop_to_jpeg(crop[0]), vector, manual=True)


def _usable(r: Region, rel: str, report: TagImport) -> bool:
    try:
        _clean_name(r.name)
    except LibraryError as exc:
        report.errors.append((rel, f"tag {r.name[:40]!r}: {exc}"))
        return False
    return True


class TagImporter:
    """The scan's store stage hands each stored photo here (one call per photo)."""

    def __init__(self, lib: Library, analyzer: Analyzer, root: Path, report: TagImport) -> None:
        self.lib, self.analyzer, self.root, self.report = lib, analyzer, Path(root), report

    def photo_stored(self, rel: str, photo_id: int) -> None:
        import_tags(self.lib, self.analyzer, self.root, rel, photo_id, self.report)


def import_tags(
    lib: Library,
    analyzer: Analyzer,
    root: Path,
    rel: str,
    photo_id: int,
    report: TagImport,
) -> None:
    """Apply the face tags of one just-stored photo to its faces (see the module notes).

    The photo is decoded again only when a tagged box matches no detected face.
    """
    path = Path(root) / rel
    try:
        regions, problems = read_tags(path, root)
        w, h = file_frame(path).display
    except XmpError as exc:
        report.errors.append((rel, str(exc)))
        return
    report.errors += [(rel, p) for p in problems]
    regions = [r for r in regions if _usable(r, rel, report)]
    if not regions:
        return
    report.photos += 1
    active = lib.active_model()
    if active is None:
        raise LibraryError("the library has no model version yet")
    model_id = active.id
    boxed = [
        (r, (r.box[0] * w, r.box[1] * h, r.box[2] * w, r.box[3] * h)) for r in regions if r.box
    ]
    faces = lib.faces_of_photo(photo_id)
    pairs = sorted(
        ((iou(box, f.box), i, f.id) for i, (_, box) in enumerate(boxed) for f in faces),
        reverse=True,
    )
    matched: dict[int, int] = {}  # region index -> face id
    for overlap, i, fid in pairs:
        if overlap >= MATCH_IOU and i not in matched and fid not in matched.values():
            matched[i] = fid
    new_faces: dict[int, NewFace] = {}  # cropped and embedded before the transaction
    decoded: DecodedImage | None = None
    for i, (r, box) in enumerate(boxed):
        if i not in matched:
            try:
                decoded = decoded or load_image(path)
                new_faces[i] = face_from_box(analyzer, decoded, box)
            except (LibraryError, ImageError) as exc:
                report.errors.append((rel, f"tag {r.name!r}: {exc}"))
    outcomes: list[str] = []
    with lib.transaction() as c:  # the photo's tags land whole or not at all
        _ensure_table(c)
        for i, face in new_faces.items():
            matched[i] = lib.add_face(photo_id, face, model_id)
        report.added += len(new_faces)
        for i, (r, _) in enumerate(boxed):
            if i in matched:
                outcomes.append(_confirm(c, photo_id, matched[i], r))
        named = {
            n.casefold()
            for (n,) in c.execute(
                "SELECT p.name FROM faces f JOIN people p ON p.id = f.person_id"
                " WHERE f.photo_id = ?",
                (photo_id,),
            )
        }
        loose = [r for r in regions if r.box is None and r.name.casefold() not in named]
        free = [
            fid
            for (fid,) in c.execute(
                "SELECT id FROM faces WHERE photo_id = ? AND person_id IS NULL", (photo_id,)
            )
            if fid not in matched.values()
        ]
        if len(loose) == 1 and len(free) == 1:
            outcomes.append(_confirm(c, photo_id, free[0], loose[0]))
        else:
            report.unplaced += len(loose)
    report.confirmed += outcomes.count("confirmed")
    report.conflicts += outcomes.count("conflict")


def conflicts(lib: Library) -> list[Conflict]:
    """The tags that disagreed with the user's labels, oldest first."""
    with lib.transaction() as c:
        _ensure_table(c)
    rows = lib.conn.execute(
        "SELECT t.id, p.path, t.face_id, t.name, t.reason, t.source FROM tag_conflicts t"
        " JOIN photos p ON p.id = t.photo_id ORDER BY t.id"
    ).fetchall()
    return [Conflict(*r) for r in rows]


def clear_conflicts(lib: Library) -> int:
    """Forget the listed conflicts (the user has seen them); returns how many."""
    with lib.transaction() as c:
        _ensure_table(c)
        return c.execute("DELETE FROM tag_conflicts").rowcount
