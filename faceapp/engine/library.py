"""The library: one SQLite file holding photos, faces, embeddings, people and history.

Every change goes through :meth:`Library.transaction`, so it lands whole or not at
all (WAL journal, ``BEGIN IMMEDIATE``). Each thread gets its own connection, so
workers and the GUI thread can read while one of them writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceapp import config
from faceapp.engine.boxes import iou
from faceapp.errors import FaceAppError

SCHEMA_VERSION = 1
EMBEDDING_DIM = 512
BUSY_TIMEOUT_MS = 10_000
LAST_LIBRARY_FILE = "last_library"  # in the data dir: the library commands default to

SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE photos (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    path         TEXT NOT NULL UNIQUE,       -- relative to the library root, '/' separators
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    width        INTEGER,                    -- display size, after EXIF rotation
    height       INTEGER,
    content_hash TEXT,                       -- finds moved/renamed files again
    status       TEXT NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
    error        TEXT,
    scanned_at   REAL NOT NULL
);
CREATE INDEX photos_hash ON photos(content_hash);
CREATE TABLE people (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    hidden     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE clusters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- stable across re-clustering (by overlap)
    created_at REAL NOT NULL
);
CREATE TABLE faces (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_id   INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    landmarks  TEXT NOT NULL,                -- JSON [[x, y] * 5], display pixels
    prob       REAL NOT NULL,
    person_id  INTEGER REFERENCES people(id) ON DELETE SET NULL,   -- confirmed by the user
    cluster_id INTEGER REFERENCES clusters(id) ON DELETE SET NULL, -- automatic
    created_at REAL NOT NULL
);
CREATE TABLE face_crops (                   -- apart from faces: keeps face rows small and fast
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    jpeg    BLOB NOT NULL                    -- 160x160 JPEG of the aligned crop
);
CREATE INDEX faces_photo ON faces(photo_id);
CREATE INDEX faces_person ON faces(person_id);
CREATE INDEX faces_cluster ON faces(cluster_id);
CREATE TABLE models (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    source           TEXT NOT NULL,          -- 'casia-webface', 'vggface2', 'user', 'finetuned'
    origin           TEXT NOT NULL,          -- where the weights came from (path or URL)
    sha256           TEXT NOT NULL,
    path             TEXT,                   -- state dict file for fine-tuned versions
    preprocess       TEXT NOT NULL,          -- 'fixed' or 'prewhiten'
    threshold        REAL NOT NULL,          -- squared L2 on unit vectors
    threshold_source TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('building', 'ready')),
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       REAL NOT NULL
);
CREATE TABLE embeddings (
    face_id  INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    vector   BLOB NOT NULL,                  -- float32[512], unit length
    PRIMARY KEY (face_id, model_id)
) WITHOUT ROWID;
CREATE INDEX embeddings_model ON embeddings(model_id);
CREATE TABLE rejections (                   -- "not this person", remembered forever
    face_id   INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    PRIMARY KEY (face_id, person_id)
) WITHOUT ROWID;
CREATE INDEX rejections_person ON rejections(person_id);
CREATE TABLE cluster_rejections (           -- "not in this cluster": re-clustering respects it
    face_id    INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    PRIMARY KEY (face_id, cluster_id)
) WITHOUT ROWID;
CREATE INDEX cluster_rejections_cluster ON cluster_rejections(cluster_id);
CREATE TABLE oplog (                        -- identity operations, for undo/redo across restarts
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    payload     TEXT NOT NULL,               -- JSON: what to apply to undo and to redo
    state       TEXT NOT NULL CHECK (state IN ('done', 'undone')),
    created_at  REAL NOT NULL
);
"""

# Migrations from version N to N+1, applied in order after a backup.
MIGRATIONS: dict[int, str] = {}


class LibraryError(FaceAppError):
    """A library that cannot be opened or used (newer schema, locked, not a library)."""


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made (sqlite3 types it as optional)."""
    if cur.lastrowid is None:
        raise LibraryError("the database made no row for an insert")
    return cur.lastrowid


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


@dataclass(frozen=True)
class FaceRow:
    id: int
    photo_id: int
    photo_path: str
    box: tuple[float, float, float, float]
    prob: float
    person_id: int | None
    cluster_id: int | None


@dataclass(frozen=True)
class ModelInfo:
    id: int
    name: str
    source: str
    origin: str
    sha256: str
    path: str | None
    preprocess: str
    threshold: float
    threshold_source: str
    status: str
    metadata: dict = field(default_factory=dict)


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def blob_to_matrix(blobs: Sequence[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1).copy()


class Library:
    """A face library stored in one SQLite file.

    ``root`` is the photo folder the library describes; photo paths are stored
    relative to it so the folder can move as a whole.
    """

    def __init__(self, path: Path | str, root: Path | str | None = None) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open_schema()
        if root is not None:
            self._set_root(Path(root))

    # -- connections -----------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (sqlite connections must not cross threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"{self.path}: not a usable library ({exc})") from exc
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: commits on success, rolls back on any exception.

        ``BEGIN IMMEDIATE`` takes the write lock up front, so a second writer waits
        (busy timeout) instead of failing half-way; if it still cannot get the lock
        it raises :class:`LibraryError` with a clear message.
        """
        conn = self.conn
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise LibraryError(
                    f"the library {self.path} is busy: another process is writing to it "
                    f"(waited {BUSY_TIMEOUT_MS / 1000:.0f} s); try again when it has finished"
                ) from exc
            raise
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    # -- schema ----------------------------------------------------------------------

    def _open_schema(self) -> None:
        conn = self.conn
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"{self.path}: not a Face Album library ({exc})") from exc
        if not tables:
            with self.transaction() as c:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            return
        if "meta" not in tables:
            raise LibraryError(f"{self.path}: not a Face Album library")
        version = int(self.get_meta("schema_version") or 0)
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"{self.path} was written by a newer Face Album (library version {version}, "
                f"this app understands up to {SCHEMA_VERSION}); please update the app"
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Back the file up, then apply each migration in its own transaction."""
        backup = self.backup_path(version)
        backup.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(backup)
        with target:
            self.conn.backup(target)
        target.close()
        while version < SCHEMA_VERSION:
            script = MIGRATIONS[version]
            with self.transaction() as c:
                for statement in script.split(";"):
                    if statement.strip():
                        c.execute(statement)
                version += 1
                c.execute(  # an upsert: a version-0 library has no schema_version row yet
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(version),),
                )

    def backup_path(self, version: int) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self.path.with_name(f"{self.path.stem}.v{version}.{stamp}.bak.sqlite")

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @property
    def root(self) -> Path | None:
        value = self.get_meta("root")
        return Path(value) if value else None

    def _set_root(self, root: Path) -> None:
        root = root.expanduser().resolve()
        if self.get_meta("root") != str(root):
            self.set_meta("root", str(root))

    # -- models ----------------------------------------------------------------------

    def add_model(
        self,
        *,
        name: str,
        source: str,
        origin: str,
        sha256: str,
        preprocess: str,
        threshold: float,
        threshold_source: str,
        path: str | None = None,
        status: str = "ready",
        metadata: dict | None = None,
    ) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO models(name, source, origin, sha256, path, preprocess, threshold,"
                " threshold_source, status, metadata, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    name,
                    source,
                    origin,
                    sha256,
                    path,
                    preprocess,
                    float(threshold),
                    threshold_source,
                    status,
                    json.dumps(metadata or {}),
                    time.time(),
                ),
            )
            return _inserted_id(cur)

    def find_model(self, sha256: str) -> ModelInfo | None:
        row = self.conn.execute(
            "SELECT * FROM models WHERE sha256 = ? ORDER BY id LIMIT 1", (sha256,)
        ).fetchone()
        return self._model_from_row(row) if row else None

    def model(self, model_id: int) -> ModelInfo:
        row = self.conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            raise LibraryError(f"no model version {model_id} in this library")
        return self._model_from_row(row)

    def models(self) -> list[ModelInfo]:
        rows = self.conn.execute("SELECT * FROM models ORDER BY id").fetchall()
        return [self._model_from_row(r) for r in rows]

    def active_model(self) -> ModelInfo | None:
        value = self.get_meta("active_model")
        return self.model(int(value)) if value else None

    def set_active_model(self, model_id: int) -> None:
        """Switch versions; refuses a version whose embeddings are not complete."""
        with self.transaction() as c:
            info = self.model(model_id)
            if info.status != "ready":
                raise LibraryError(f"model version {model_id} is not ready ({info.status})")
            missing = c.execute(
                "SELECT COUNT(*) FROM faces f WHERE NOT EXISTS (SELECT 1 FROM embeddings e"
                " WHERE e.face_id = f.id AND e.model_id = ?)",
                (model_id,),
            ).fetchone()[0]
            if missing:
                raise LibraryError(f"model version {model_id} lacks embeddings for {missing} faces")
            c.execute(
                "INSERT INTO meta(key, value) VALUES ('active_model', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(model_id),),
            )

    def update_model(self, model_id: int, **fields: object) -> None:
        allowed = {"status", "threshold", "threshold_source", "metadata", "path", "name"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"cannot update model fields {sorted(set(fields) - allowed)}")
        values = [json.dumps(v) if k == "metadata" else v for k, v in fields.items()]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as c:
            c.execute(f"UPDATE models SET {assignments} WHERE id = ?", (*values, model_id))

    @staticmethod
    def _model_from_row(row: tuple) -> ModelInfo:
        (mid, name, source, origin, sha, path, pre, thr, thr_src, status, meta, _created) = row
        return ModelInfo(
            mid, name, source, origin, sha, path, pre, thr, thr_src, status, json.loads(meta)
        )

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
    ) -> int:
        """Store one scanned photo and its faces in one transaction.

        A changed file (same path, new content) keeps the user's work: each old face
        that overlaps a new one (IoU > 0.5) passes its person and rejections on.
        """
        now = time.time()
        with self.transaction() as c:
            row = c.execute("SELECT id FROM photos WHERE path = ?", (path,)).fetchone()
            carried: list[tuple[tuple[float, ...], int | None, list[int]]] = []
            if row is None:
                cur = c.execute(
                    "INSERT INTO photos(path, size, mtime_ns, width, height, content_hash,"
                    " status, error, scanned_at) VALUES (?,?,?,?,?,?, 'ok', NULL, ?)",
                    (path, size, mtime_ns, width, height, content_hash, now),
                )
                photo_id = _inserted_id(cur)
            else:
                photo_id = int(row[0])
                for fid, x1, y1, x2, y2, person in c.execute(
                    "SELECT id, x1, y1, x2, y2, person_id FROM faces WHERE photo_id = ?",
                    (photo_id,),
                ).fetchall():
                    rejected = [
                        r[0]
                        for r in c.execute(
                            "SELECT person_id FROM rejections WHERE face_id = ?", (fid,)
                        )
                    ]
                    carried.append(((x1, y1, x2, y2), person, rejected))
                c.execute("DELETE FROM faces WHERE photo_id = ?", (photo_id,))
                c.execute(
                    "UPDATE photos SET size=?, mtime_ns=?, width=?, height=?, content_hash=?,"
                    " status='ok', error=NULL, scanned_at=? WHERE id=?",
                    (size, mtime_ns, width, height, content_hash, now, photo_id),
                )
            for face in faces:
                cur = c.execute(
                    "INSERT INTO faces(photo_id, x1, y1, x2, y2, landmarks, prob, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (
                        photo_id,
                        *map(float, face.box),
                        json.dumps(face.landmarks),
                        float(face.prob),
                        now,
                    ),
                )
                face_id = _inserted_id(cur)
                c.execute(
                    "INSERT INTO face_crops(face_id, jpeg) VALUES (?,?)", (face_id, face.crop_jpeg)
                )
                c.execute(
                    "INSERT INTO embeddings(face_id, model_id, vector) VALUES (?,?,?)",
                    (face_id, model_id, vector_to_blob(face.embedding)),
                )
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

    def store_photo_error(self, path: str, *, size: int, mtime_ns: int, reason: str) -> None:
        """Remember an unreadable file so an unchanged copy is not retried on every scan."""
        with self.transaction() as c:
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
        with self.transaction() as c:
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
        """Deleted files leave the people views but keep their faces, should they return."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE photos SET status='missing' WHERE path = ? AND status = 'ok'",
                [(p,) for p in paths],
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
        with self.transaction() as c:
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


def open_library(folder: Path | None = None, library_path: Path | None = None) -> Library:
    """The library for a folder (default location keyed by the folder) or an explicit file.

    With neither, the most recently used library: commands such as ``faces`` then
    work on what the last ``scan`` produced.
    """
    last = config.data_dir() / LAST_LIBRARY_FILE
    if library_path is None and folder is not None:
        library_path = config.default_library_path(folder)
    if library_path is None:
        if not last.exists():
            raise LibraryError("no library yet: scan a folder first or pass --library PATH")
        library_path = Path(last.read_text().strip())
    library_path = Path(library_path).expanduser()
    if folder is None and not library_path.exists():
        raise LibraryError(f"no library at {library_path}")
    lib = Library(library_path, root=folder)
    last.write_text(str(library_path.resolve()))
    return lib
