"""Photo and face rows of the library: storing a scanned photo, reading faces and embeddings.

:class:`PhotoRows` is a part of :class:`faceapp.engine.library.Library` (which gives it
its connection and transactions); it is apart so the store's connection and schema
handling and its photo bookkeeping can each be read on their own.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from faceapp.engine.boxes import iou
from faceapp.engine.library_schema import inserted_id
from faceapp.engine.storage import LibraryError

if TYPE_CHECKING:
    from faceapp.engine.library import ModelInfo

EMBEDDING_DIM = 512


@dataclass(frozen=True)
class PhotoState:
    id: int
    path: str
    size: int
    mtime_ns: int
    status: str
    content_hash: str | None


@dataclass
class NewFace:
    """A detected face ready to be stored, with its embedding for the active model."""

    box: tuple[float, float, float, float]
    landmarks: list[list[float]]
    prob: float
    crop_jpeg: bytes
    embedding: np.ndarray
    manual: bool = False  # drawn by the user rather than found by the detector


@dataclass(frozen=True)
class FaceRow:
    id: int
    photo_id: int
    photo_path: str
    box: tuple[float, float, float, float]
    prob: float
    person_id: int | None
    cluster_id: int | None


def _insert_face(
    c: sqlite3.Connection, photo_id: int, face: NewFace, model_id: int, now: float
) -> int:
    """Insert a face with its crop and its embedding for ``model_id``; returns its id."""
    cur = c.execute(
        "INSERT INTO faces(photo_id, x1, y1, x2, y2, landmarks, prob, created_at, manual)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (
            photo_id,
            *map(float, face.box),
            json.dumps(face.landmarks),
            float(face.prob),
            now,
            int(face.manual),
        ),
    )
    face_id = inserted_id(cur)
    c.execute("INSERT INTO face_crops(face_id, jpeg) VALUES (?,?)", (face_id, face.crop_jpeg))
    c.execute(
        "INSERT INTO embeddings(face_id, model_id, vector) VALUES (?,?,?)",
        (face_id, model_id, vector_to_blob(face.embedding)),
    )
    return face_id


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def blob_to_matrix(blobs: Sequence[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1).copy()


class PhotoRows:
    """The photos, faces and embeddings tables, read and written through ``Library``."""

    if TYPE_CHECKING:  # given by Library

        @property
        def conn(self) -> sqlite3.Connection: ...

        def transaction(
            self, *, durable: bool = True
        ) -> AbstractContextManager[sqlite3.Connection]: ...

        def active_model(self) -> ModelInfo | None: ...

    # -- photos ----------------------------------------------------------------------

    def photo_states(self) -> dict[str, PhotoState]:
        rows = self.conn.execute(
            "SELECT id, path, size, mtime_ns, status, content_hash FROM photos"
        ).fetchall()
        return {r[1]: PhotoState(*r) for r in rows}

    def photo_path(self, photo_id: int) -> str:
        row = self.conn.execute("SELECT path FROM photos WHERE id = ?", (photo_id,)).fetchone()
        if row is None:
            raise LibraryError(f"no photo {photo_id}")
        return row[0]

    def store_photo(
        self,
        path: str,
        *,
        size: int,
        mtime_ns: int,
        width: int,
        height: int,
        content_hash: str | None,
        faces: Sequence[NewFace],
        model_id: int,
        taken_at: str | None = None,
    ) -> int:
        """Store one scanned photo and its faces in one transaction.

        A changed file (same path, new content) keeps the user's work: each old face
        that overlaps a new one (IoU > 0.5) passes its person and rejections on, and
        faces the user drew stay as they are (a detected face on one of them is dropped).
        A photo another scan stored meanwhile (same size, time and content) is kept as
        it is, with its face rows.
        """
        now = time.time()
        with self.transaction(durable=False) as c:
            row = c.execute(
                "SELECT id, size, mtime_ns, content_hash, status FROM photos WHERE path = ?",
                (path,),
            ).fetchone()
            carried: list[tuple[tuple[float, ...], int | None, list[int]]] = []
            if row is not None and tuple(row[1:]) == (size, mtime_ns, content_hash, "ok"):
                return int(row[0])
            if row is None:
                cur = c.execute(
                    "INSERT INTO photos(path, size, mtime_ns, width, height, content_hash,"
                    " status, error, scanned_at, taken_at) VALUES (?,?,?,?,?,?, 'ok', NULL, ?, ?)",
                    (path, size, mtime_ns, width, height, content_hash, now, taken_at),
                )
                photo_id = inserted_id(cur)
                drawn: list[tuple[float, ...]] = []
            else:
                photo_id = int(row[0])
                drawn = c.execute(
                    "SELECT x1, y1, x2, y2 FROM faces WHERE photo_id = ? AND manual = 1",
                    (photo_id,),
                ).fetchall()
                for fid, x1, y1, x2, y2, person in c.execute(
                    "SELECT id, x1, y1, x2, y2, person_id FROM faces"
                    " WHERE photo_id = ? AND manual = 0",
                    (photo_id,),
                ).fetchall():
                    rejected = [
                        r[0]
                        for r in c.execute(
                            "SELECT person_id FROM rejections WHERE face_id = ?", (fid,)
                        )
                    ]
                    carried.append(((x1, y1, x2, y2), person, rejected))
                c.execute("DELETE FROM faces WHERE photo_id = ? AND manual = 0", (photo_id,))
                c.execute(
                    "UPDATE photos SET size=?, mtime_ns=?, width=?, height=?, content_hash=?,"
                    " status='ok', error=NULL, scanned_at=?, taken_at=? WHERE id=?",
                    (size, mtime_ns, width, height, content_hash, now, taken_at, photo_id),
                )
            for face in faces:
                if any(iou(box, face.box) > 0.5 for box in drawn):
                    continue
                face_id = _insert_face(c, photo_id, face, model_id, now)
                for old_box, person, rejected in carried:
                    if iou(old_box, face.box) > 0.5:
                        if person is not None:
                            c.execute(
                                "UPDATE faces SET person_id = ? WHERE id = ?", (person, face_id)
                            )
                        c.executemany(
                            "INSERT OR IGNORE INTO rejections(face_id, person_id) VALUES (?,?)",
                            [(face_id, p) for p in rejected],
                        )
                        break
            return photo_id

    def add_face(self, photo_id: int, face: NewFace, model_id: int) -> int:
        """One more face in a stored photo (a face the detector missed, given by its box)."""
        with self.transaction() as c:
            return _insert_face(c, photo_id, face, model_id, time.time())

    def is_stored(self, path: str, size: int, mtime_ns: int) -> bool:
        """Is this file (same size and time) stored already, by this scan or another?"""
        row = self.conn.execute(
            "SELECT 1 FROM photos WHERE path = ? AND size = ? AND mtime_ns = ? AND status = 'ok'",
            (path, size, mtime_ns),
        ).fetchone()
        return row is not None

    def store_photo_error(self, path: str, *, size: int, mtime_ns: int, reason: str) -> None:
        """Remember an unreadable file so an unchanged copy is not retried on every scan."""
        with self.transaction(durable=False) as c:
            c.execute(
                "INSERT INTO photos(path, size, mtime_ns, status, error, scanned_at)"
                " VALUES (?,?,?, 'error', ?, ?) ON CONFLICT(path) DO UPDATE SET"
                " size=excluded.size, mtime_ns=excluded.mtime_ns, status='error',"
                " error=excluded.error, scanned_at=excluded.scanned_at",
                (path, size, mtime_ns, reason, time.time()),
            )

    def move_photo(self, photo_id: int, new_path: str, *, size: int, mtime_ns: int) -> None:
        """A file found again under a new name (same content): keep its faces and labels.

        A photo still recorded at ``new_path`` (its file was replaced: a swap, a
        renumbering) is not deleted with its labels: it steps aside as a missing photo
        under a name no file can have (``//`` never occurs in a relative path) and is
        found again by content like any other.
        """
        with self.transaction(durable=False) as c:
            c.execute(
                "DELETE FROM photos WHERE path = ? AND id != ? AND status = 'error'",
                (new_path, photo_id),
            )
            c.execute(
                "UPDATE photos SET path = path || '//replaced-' || id, status = 'missing'"
                " WHERE path = ? AND id != ?",
                (new_path, photo_id),
            )
            c.execute(
                "UPDATE photos SET path=?, size=?, mtime_ns=?, status='ok', scanned_at=?"
                " WHERE id=?",
                (new_path, size, mtime_ns, time.time(), photo_id),
            )

    def mark_missing(self, paths: Sequence[str]) -> None:
        """Deleted files leave the people views but keep their faces, should they return.

        An unreadable file that is gone is no longer an error to report.
        """
        with self.transaction(durable=False) as c:
            c.executemany(
                "UPDATE photos SET status='missing' WHERE path = ? AND status = 'ok'",
                [(p,) for p in paths],
            )
            c.executemany(
                "DELETE FROM photos WHERE path = ? AND status = 'error'", [(p,) for p in paths]
            )

    def photo_errors(self) -> list[tuple[str, str]]:
        return self.conn.execute(
            "SELECT path, error FROM photos WHERE status = 'error' ORDER BY path"
        ).fetchall()

    # -- faces -----------------------------------------------------------------------

    _FACE_SELECT = (
        "SELECT f.id, f.photo_id, p.path, f.x1, f.y1, f.x2, f.y2, f.prob, f.person_id,"
        " f.cluster_id FROM faces f JOIN photos p ON p.id = f.photo_id"
    )

    @staticmethod
    def _face_from_row(r: tuple) -> FaceRow:
        return FaceRow(r[0], r[1], r[2], (r[3], r[4], r[5], r[6]), r[7], r[8], r[9])

    def faces(self, *, include_missing: bool = False) -> list[FaceRow]:
        where = "" if include_missing else " WHERE p.status = 'ok'"
        rows = self.conn.execute(self._FACE_SELECT + where + " ORDER BY f.id").fetchall()
        return [self._face_from_row(r) for r in rows]

    def faces_of_photo(self, photo_id: int) -> list[FaceRow]:
        rows = self.conn.execute(
            self._FACE_SELECT + " WHERE f.photo_id = ? ORDER BY f.x1", (photo_id,)
        ).fetchall()
        return [self._face_from_row(r) for r in rows]

    def face(self, face_id: int) -> FaceRow:
        row = self.conn.execute(self._FACE_SELECT + " WHERE f.id = ?", (face_id,)).fetchone()
        if row is None:
            raise LibraryError(f"no face {face_id}")
        return self._face_from_row(row)

    def face_crop(self, face_id: int) -> bytes:
        row = self.conn.execute(
            "SELECT jpeg FROM face_crops WHERE face_id = ?", (face_id,)
        ).fetchone()
        if row is None:
            raise LibraryError(f"no face {face_id}")
        return row[0]

    def face_crops(self, face_ids: Sequence[int]) -> dict[int, bytes]:
        """Crops of many faces at once (JPEG bytes by face id), in chunks SQLite accepts."""
        out: dict[int, bytes] = {}
        ids = [int(f) for f in face_ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                self.conn.execute(
                    f"SELECT face_id, jpeg FROM face_crops WHERE face_id IN ({marks})", chunk
                ).fetchall()
            )
        return out

    def face_landmarks(self, face_id: int) -> list[list[float]]:
        row = self.conn.execute("SELECT landmarks FROM faces WHERE id = ?", (face_id,)).fetchone()
        if row is None:
            raise LibraryError(f"no face {face_id}")
        return json.loads(row[0])

    def embeddings(
        self, model_id: int | None = None, *, include_missing: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, unit embeddings) for a model version (default: the active one)."""
        if model_id is None:
            active = self.active_model()
            if active is None:
                return np.zeros(0, np.int64), np.zeros((0, EMBEDDING_DIM), np.float32)
            model_id = active.id
        where = "" if include_missing else " AND p.status = 'ok'"
        rows = self.conn.execute(
            "SELECT e.face_id, e.vector FROM embeddings e JOIN faces f ON f.id = e.face_id"
            " JOIN photos p ON p.id = f.photo_id WHERE e.model_id = ?"
            + where
            + " ORDER BY e.face_id",
            (model_id,),
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, blob_to_matrix([r[1] for r in rows])

    def store_embeddings(self, model_id: int, face_ids: Sequence[int], vectors: np.ndarray) -> None:
        with self.transaction(durable=False) as c:  # derived data: made again if lost
            c.executemany(
                "INSERT OR REPLACE INTO embeddings(face_id, model_id, vector) VALUES (?,?,?)",
                [
                    (int(f), model_id, vector_to_blob(v))
                    for f, v in zip(face_ids, vectors, strict=True)
                ],
            )

    def counts(self) -> dict[str, int]:
        q = self.conn.execute
        return {
            "photos": q("SELECT COUNT(*) FROM photos WHERE status = 'ok'").fetchone()[0],
            "errors": q("SELECT COUNT(*) FROM photos WHERE status = 'error'").fetchone()[0],
            "faces": q(
                "SELECT COUNT(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
                " WHERE p.status = 'ok'"
            ).fetchone()[0],
            "people": q("SELECT COUNT(*) FROM people").fetchone()[0],
        }
