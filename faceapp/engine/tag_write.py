"""Write the confirmed faces into XMP, only when the user asks (``faceapp write-tags``).

Each photo showing a chosen person gets every face confirmed in it: MWG Regions and
MP RegionInfo (boxes), PersonInImage and digiKam ``TagsList`` ``People/NAME`` (names).
Default target: the sidecar ``IMG_1.jpg.xmp``; the photo is not touched. ``embed``
writes into JPEGs (other formats still get a sidecar) by replacing the XMP segment
only (:mod:`faceapp.engine.jpeg_xmp`), and updates the library's record of the file
so the next scan does not take the photo for a new one.

Safety: every file is written to a temporary file next to it, read back and checked,
then atomically renamed over the old one, so a failure or a kill leaves the photo and
its earlier sidecar as they were. A kill between the rename and the library's commit
leaves a tagged photo the library knows by its old size and time: the next scan
reads it again (its labels carry over by overlap) and a new write sees it is up to
date. Read-only files and folders are reported and skipped. Boxes go back to the
stored image's frame (see :mod:`face_tags`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faceapp.engine import jpeg_xmp, xmp_faces
from faceapp.engine.boxes import iou
from faceapp.engine.face_tags import (
    FileFrame,
    display_to_stored,
    file_frame,
    sidecars,
    stored_to_display,
)
from faceapp.engine.files import write_atomic
from faceapp.engine.jpeg_xmp import JpegError
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.scan_decode import file_hash
from faceapp.engine.xmp_faces import NewRegion, XmpError

WRITTEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS tags_written (   -- photos whose files carry this app's face tags
    photo_id INTEGER PRIMARY KEY REFERENCES photos(id) ON DELETE CASCADE
)
"""
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
CHANGED = "the photo changed since it was scanned; scan the folder again"


@dataclass
class WriteReport:
    photos: int = 0  # photos considered
    written: int = 0  # files written (or, in a dry run, that would be)
    skipped: int = 0  # already up to date, or not writable (then also in errors)
    errors: list[tuple[str, str]] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)  # path, target, names
    cancelled: bool = False

    def as_dict(self) -> dict:
        return {
            "photos": self.photos,
            "written": self.written,
            "skipped": self.skipped,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "changes": self.changes,
        }


@dataclass
class _Photo:
    id: int
    path: str
    size: tuple[int, int]  # display size the boxes are in
    file: tuple[int, int]  # size and mtime_ns the library recorded
    faces: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)


def _plan(lib: Library, person_ids: Sequence[int] | None) -> list[_Photo]:
    c = lib.conn
    with lib.transaction() as t:
        t.execute(WRITTEN_SCHEMA)
    photos: dict[int, _Photo] = {}
    for pid, path, w, h, size, mtime_ns in c.execute(
        "SELECT id, path, width, height, size, mtime_ns FROM photos WHERE status = 'ok' AND (id IN"
        " (SELECT photo_id FROM faces WHERE person_id IS NOT NULL) OR id IN"
        " (SELECT photo_id FROM tags_written)) ORDER BY path"
    ):
        photos[pid] = _Photo(pid, path, (w, h), (size, mtime_ns))
    for photo_id, name, x1, y1, x2, y2 in c.execute(
        "SELECT f.photo_id, pe.name, f.x1, f.y1, f.x2, f.y2 FROM faces f"
        " JOIN people pe ON pe.id = f.person_id ORDER BY f.x1"
    ):
        if photo_id in photos:
            photos[photo_id].faces.append((name, (x1, y1, x2, y2)))
    if person_ids is not None:
        chosen = {int(p) for p in person_ids}
        keep = {
            r[0]
            for r in c.execute(
                "SELECT DISTINCT photo_id FROM faces WHERE person_id IN"
                " (SELECT value FROM json_each(?))",
                (f"[{','.join(map(str, chosen))}]",),
            )
        }
        return [p for p in photos.values() if p.id in keep]
    return list(photos.values())


def _regions(photo: _Photo, frame: FileFrame, existing: bytes | None) -> tuple[list, tuple]:
    """Our regions in the frame the file's region list uses, and that frame's size."""
    tags = xmp_faces.read(existing) if existing else xmp_faces.XmpTags()
    foreign_mwg = [r for r in tags.regions if r.source == "mwg" and not r.ours]
    orientation = frame.region_orientation(tags.applied_to if foreign_mwg else None)
    w, h = photo.size
    others = [
        stored_to_display(r.box, orientation if r.source == "mwg" else frame.orientation)
        for r in tags.regions
        if r.box is not None and not r.ours
    ]
    out = []
    for name, (x1, y1, x2, y2) in photo.faces:
        shown = (x1 / w, y1 / h, x2 / w, y2 / h)
        if any(iou(shown, o) > 0.3 for o in others):
            continue  # another program already tagged this face: theirs stays, no twin
        out.append(NewRegion(name, display_to_stored(shown, orientation)))
    size = frame.stored if orientation == frame.orientation else frame.display
    return out, size


def _writable(path: Path) -> str | None:
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return "read-only folder; skipped"
    if path.exists() and not os.access(path, os.W_OK):
        return "read-only file; skipped"
    return None


def _sidecar_packet(xmp: bytes) -> bytes:
    return (
        b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        + xmp
        + (b'\n<?xpacket end="w"?>\n')
    )


def write_tags(
    lib: Library,
    *,
    person_ids: Sequence[int] | None = None,
    embed: bool = False,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> WriteReport:
    """Write the face tags of the chosen people's photos (all people when None)."""
    root = lib.root
    if root is None:
        raise LibraryError("the library does not know its photo folder; scan it first")
    report = WriteReport()
    plan = _plan(lib, person_ids)
    for done, photo in enumerate(plan):
        if cancel is not None and cancel():
            report.cancelled = True
            break
        if progress is not None:
            progress(done, len(plan))
        report.photos += 1
        path = Path(root) / photo.path
        into_photo = embed and path.suffix.lower() in _JPEG_SUFFIXES
        target = path if into_photo else sidecars(path)[0]
        try:
            for stale in (path, sidecars(path)[0]):  # left by a run that was killed
                jpeg_xmp.temp_path(stale).unlink(missing_ok=True)
            frame = file_frame(path)
            if frame.display != photo.size:
                raise XmpError(CHANGED)
            if into_photo:
                existing = jpeg_xmp.read_xmp(path.read_bytes())
            else:
                existing = target.read_bytes() if target.exists() else None
            regions, size = _regions(photo, frame, existing)
            if _up_to_date(existing, regions):
                report.skipped += 1
                continue
            st = path.stat()
            if into_photo and (st.st_size, st.st_mtime_ns) != photo.file:
                raise XmpError(CHANGED)  # the new record would hide an edit the scan has not seen
            change = {
                "path": photo.path,
                "target": target.name,
                "names": [r.name for r in regions],
            }
            new = xmp_faces.merge(existing, regions, size)
            if dry_run:
                report.changes.append(change)
                report.written += 1
                continue
            if (reason := _writable(target)) is not None:
                report.errors.append((photo.path, reason))
                report.skipped += 1
                continue
            if into_photo:
                with lib.transaction() as c:
                    jpeg_xmp.replace_file_xmp(path, jpeg_xmp.wrap_packet(new))
                    st = path.stat()
                    c.execute(
                        "UPDATE photos SET size = ?, mtime_ns = ?, content_hash = ? WHERE id = ?",
                        (st.st_size, st.st_mtime_ns, file_hash(path), photo.id),
                    )
                    _mark(c, photo.id, bool(regions))
            else:
                packet = _sidecar_packet(new)
                xmp_faces.read(packet)  # parses: never leave a sidecar other programs cannot read
                write_atomic(target, packet, temp=jpeg_xmp.temp_path(target), verify=True)
                with lib.transaction() as c:
                    _mark(c, photo.id, bool(regions))
            report.changes.append(change)
            report.written += 1
        except (OSError, XmpError, JpegError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            report.errors.append((photo.path, reason))
    if progress is not None:
        progress(len(plan), len(plan))
    return report


def _up_to_date(existing: bytes | None, regions: list[NewRegion]) -> bool:
    """Does the file already carry exactly these regions as this app's (boxes to 1e-5)?"""
    if existing is None:
        return not regions
    ours = [r for r in xmp_faces.read(existing).regions if r.ours and r.source == "mwg"]
    return len(ours) == len(regions) and all(
        o.name == r.name
        and o.box is not None  # mwg regions always have a box
        and all(abs(a - b) < 1e-5 for a, b in zip(o.box, r.box, strict=True))
        for o, r in zip(ours, regions, strict=True)
    )


def _mark(c: sqlite3.Connection, photo_id: int, written: bool) -> None:
    if written:
        c.execute("INSERT OR IGNORE INTO tags_written(photo_id) VALUES (?)", (photo_id,))
    else:
        c.execute("DELETE FROM tags_written WHERE photo_id = ?", (photo_id,))
