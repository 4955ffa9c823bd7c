"""From people to photos: photos by date, photos of several people together, covers,
and the files a scan could not read.

Read-only queries over the library, plus two small writes that are settings rather
than identity operations (a person's cover face, the dates of old libraries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from faceapp.engine.birthdays import age_at
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.oplog import Changes, OpChanges, commit
from faceapp.engine.photo_dates import date_taken


@dataclass(frozen=True)
class PhotoFace:
    face_id: int
    box: tuple[float, float, float, float]  # display pixels of the photo
    person_id: int | None
    name: str | None
    age: int | None  # the person's age when the photo was taken, if their birth date is known
    manual: bool  # drawn by the user


@dataclass(frozen=True)
class Photo:
    id: int
    path: str  # relative to the library root
    taken_at: str | None  # 'YYYY-MM-DDTHH:MM:SS', camera local time (EXIF, else file time)
    width: int | None
    height: int | None
    faces: tuple[PhotoFace, ...]

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "taken": self.taken_at,
            "faces": [
                {
                    "face": f.face_id,
                    "person": f.person_id,
                    "name": f.name,
                    "box": [round(v, 1) for v in f.box],
                    **({"age": f.age} if f.age is not None else {}),
                    **({"manual": True} if f.manual else {}),
                }
                for f in self.faces
            ],
        }


@dataclass(frozen=True)
class Problem:
    """A file the scan could not use, and why."""

    path: str
    reason: str
    when: float  # when it was last tried (seconds since the epoch)


def photos_with(lib: Library, person_ids: Sequence[int] = ()) -> list[Photo]:
    """Photos (present on disk) in which every given person appears, oldest first.

    No people: every photo. Photos without a date sort last, by path.
    """
    wanted = sorted({int(p) for p in person_ids})
    known = {r[0] for r in lib.conn.execute("SELECT id FROM people")}
    missing = [p for p in wanted if p not in known]
    if missing:
        raise LibraryError(f"no person {missing[0]}")
    rows = lib.conn.execute(
        "SELECT p.id, p.path, p.taken_at, p.width, p.height FROM photos p"
        " WHERE p.status = 'ok' AND (SELECT COUNT(DISTINCT f.person_id) FROM faces f"
        "  WHERE f.photo_id = p.id AND f.person_id IN (SELECT value FROM json_each(?1))) = ?2"
        " ORDER BY p.taken_at IS NULL, p.taken_at, p.path",
        (json.dumps(wanted), len(wanted)),
    ).fetchall()
    return _with_faces(lib, rows)


def photo(lib: Library, photo_id: int) -> Photo:
    rows = lib.conn.execute(
        "SELECT id, path, taken_at, width, height FROM photos WHERE id = ?", (int(photo_id),)
    ).fetchall()
    if not rows:
        raise LibraryError(f"no photo {photo_id}")
    return _with_faces(lib, rows)[0]


def _with_faces(lib: Library, rows: list[tuple]) -> list[Photo]:
    faces: dict[int, list[PhotoFace]] = {r[0]: [] for r in rows}
    for start in range(0, len(rows), 500):
        chunk = json.dumps([r[0] for r in rows[start : start + 500]])
        for pid, fid, x1, y1, x2, y2, person, name, born, taken, manual in lib.conn.execute(
            "SELECT f.photo_id, f.id, f.x1, f.y1, f.x2, f.y2, f.person_id, pe.name,"
            " pe.birth_date, p.taken_at, f.manual FROM faces f JOIN photos p ON p.id = f.photo_id"
            " LEFT JOIN people pe ON pe.id = f.person_id"
            " WHERE f.photo_id IN (SELECT value FROM json_each(?)) ORDER BY f.x1, f.id",
            (chunk,),
        ):
            faces[pid].append(
                PhotoFace(fid, (x1, y1, x2, y2), person, name, age_at(born, taken), bool(manual))
            )
    return [Photo(r[0], r[1], r[2], r[3], r[4], tuple(faces[r[0]])) for r in rows]


def fill_missing_dates(lib: Library, root: Path | None = None) -> int:
    """Read the date of photos stored without one (libraries from before dates were
    kept); returns how many got one. Only file headers are read."""
    root = root or lib.root
    rows = lib.conn.execute(
        "SELECT id, path FROM photos WHERE status = 'ok' AND taken_at IS NULL"
    ).fetchall()
    if not rows or root is None:
        return 0
    found = []
    for pid, rel in rows:
        try:
            found.append((date_taken(Path(root) / rel), pid))
        except OSError:
            continue  # gone since the scan: it is marked missing by the next one
    with lib.transaction() as c:
        c.executemany("UPDATE photos SET taken_at = ? WHERE id = ? AND taken_at IS NULL", found)
    return len(found)


# -- covers ------------------------------------------------------------------------------


def set_cover(lib: Library, person_id: int, face_id: int | None) -> OpChanges:
    """Make one of the person's confirmed faces their picture (None: back to automatic);
    one undo step."""
    with lib.transaction() as c:
        row = c.execute(
            "SELECT name, cover_face_id FROM people WHERE id = ?", (int(person_id),)
        ).fetchone()
        if row is None:
            raise LibraryError(f"no person {person_id}")
        if face_id is not None:
            owner = c.execute("SELECT person_id FROM faces WHERE id = ?", (int(face_id),))
            found = owner.fetchone()
            if found is None or found[0] != int(person_id):
                raise LibraryError(f"face {face_id} is not one of {row[0]}'s faces")
        new = None if face_id is None else int(face_id)
        ch = Changes(settings=[[int(person_id), "cover_face_id", row[1], new]])
        text = f"New picture for {row[0]}" if new is not None else f"Automatic picture for {row[0]}"
        return commit(c, "cover", text, ch, person_id=int(person_id))


def cover_face(lib: Library, person_id: int) -> int | None:
    """The cover the user chose, if that face is still the person's and on disk."""
    row = lib.conn.execute(
        "SELECT f.id FROM people pe JOIN faces f ON f.id = pe.cover_face_id"
        " AND f.person_id = pe.id JOIN photos p ON p.id = f.photo_id AND p.status = 'ok'"
        " WHERE pe.id = ?",
        (int(person_id),),
    ).fetchone()
    return int(row[0]) if row else None


# -- scan problems -----------------------------------------------------------------------


def problems(lib: Library) -> list[Problem]:
    """Files the scans could not read, with the reason and when they were last tried."""
    rows = lib.conn.execute(
        "SELECT path, error, scanned_at FROM photos WHERE status = 'error' ORDER BY path"
    ).fetchall()
    return [Problem(p, r or "unknown error", float(t)) for p, r, t in rows]
