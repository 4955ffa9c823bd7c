"""Take the photos of a person out of the album: copies or links in a folder, or a face table.

Exported files keep their names; two photos of the same name from different folders
become ``IMG_1.jpg`` and ``IMG_1 (2).jpg``. Copies keep the file times (``copy2``);
an existing file in the target folder is never overwritten.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from faceapp.engine.library import Library, LibraryError

MODES = ("copy", "link")


@dataclass
class ExportReport:
    photos: int = 0
    exported: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # names in the target folder

    def as_dict(self) -> dict:
        return {
            "photos": self.photos,
            "exported": self.exported,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "files": self.files,
        }


def person_photos(lib: Library, person_id: int) -> list[str]:
    """Paths (relative to the library root) of the photos where the person is confirmed."""
    rows = lib.conn.execute(
        "SELECT DISTINCT p.path FROM faces f JOIN photos p ON p.id = f.photo_id"
        " WHERE f.person_id = ? AND p.status = 'ok' ORDER BY p.path",
        (person_id,),
    ).fetchall()
    return [r[0] for r in rows]


def _free_name(folder: Path, name: str, taken: set[str]) -> str:
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 1
    while candidate.casefold() in taken or (folder / candidate).exists():
        n += 1
        candidate = f"{stem} ({n}){suffix}"
    taken.add(candidate.casefold())
    return candidate


def export_person(
    lib: Library,
    person_id: int,
    target: Path,
    mode: str = "copy",
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Copy (or symlink) every photo of a person into ``target`` (created if needed)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    root = lib.root
    if root is None:
        raise LibraryError("the library does not know its photo folder; scan it first")
    target = Path(target).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LibraryError(f"cannot create {target}: {exc.strerror or exc}") from None
    if target.resolve() == Path(root).resolve():
        raise LibraryError("choose a folder other than the photo folder itself")
    report = ExportReport()
    paths = person_photos(lib, person_id)
    taken: set[str] = set()
    for done, rel in enumerate(paths):
        if progress is not None:
            progress(done, len(paths))
        report.photos += 1
        source = Path(root) / rel
        name = _free_name(target, source.name, taken)
        try:
            if mode == "copy":
                shutil.copy2(source, target / name)
            else:
                os.symlink(source.resolve(), target / name)
        except OSError as exc:
            report.errors.append((rel, exc.strerror or str(exc)))
            continue
        report.exported += 1
        report.files.append(name)
    return report


CSV_COLUMNS = ("face", "photo", "x1", "y1", "x2", "y2", "person", "cluster", "date_taken")


def write_faces_csv(lib: Library, out: TextIO) -> int:
    """One row per face: id, photo, box (display pixels), person's name, cluster id and
    the photo's date taken (EXIF, else the file's time; camera local time)."""
    names = dict(lib.conn.execute("SELECT id, name FROM people").fetchall())
    taken = dict(lib.conn.execute("SELECT id, taken_at FROM photos").fetchall())
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    faces = lib.faces()
    for f in faces:
        writer.writerow(
            (
                f.id,
                f.photo_path,
                *(round(v, 1) for v in f.box),
                names.get(f.person_id, ""),
                "" if f.cluster_id is None else f.cluster_id,
                taken.get(f.photo_id) or "",
            )
        )
    return len(faces)
