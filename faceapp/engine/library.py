"""The library: one SQLite file holding photos, faces, embeddings, people and history.

Every change goes through :meth:`Library.transaction`, so it lands whole or not at
all (WAL journal, ``BEGIN IMMEDIATE``). Each thread gets its own connection, so
workers and the GUI thread can read while one of them writes.

A library file is never made by accident: it is built under a temporary name and
linked into place whole, so an empty or half-made file where a library was expected
is an error, and two processes creating one library at once end up sharing one.
Every open runs the quick check of :mod:`faceapp.engine.check`. The user's own edits
commit with ``synchronous=FULL`` (the journal is on the disk before the call
returns); bulk scan writes, which a rescan redoes, use ``NORMAL``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from faceapp import config
from faceapp.engine import backup, check
from faceapp.engine.boxes import iou
from faceapp.engine.files import fsync_dir
from faceapp.engine.orphans import clean_finetune_orphans
from faceapp.engine.storage import LibraryDamaged, LibraryError, StorageError, explain, is_damage

SCHEMA_VERSION = 3
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
    scanned_at   REAL NOT NULL,
    taken_at     TEXT                        -- local 'YYYY-MM-DDTHH:MM:SS': EXIF, else file time
);
CREATE INDEX photos_hash ON photos(content_hash);
CREATE TABLE people (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    hidden     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    birth_date TEXT,                         -- 'YYYY-MM-DD': no face before it is theirs
    cover_face_id INTEGER REFERENCES faces(id) ON DELETE SET NULL
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
    created_at REAL NOT NULL,
    manual     INTEGER NOT NULL DEFAULT 0    -- drawn by the user: kept when the photo is rescanned
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
CREATE UNIQUE INDEX models_base ON models(sha256, source) WHERE path IS NULL;
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
MIGRATIONS: dict[int, str] = {
    # One row per base model: two processes registering it at once made two. Their
    # embeddings are identical (same weights); the lower id keeps them.
    1: """
    INSERT OR IGNORE INTO embeddings(face_id, model_id, vector)
        SELECT e.face_id, k.keep, e.vector FROM embeddings e JOIN
        (SELECT m.id AS dup, (SELECT MIN(o.id) FROM models o WHERE o.path IS NULL
            AND o.sha256 = m.sha256 AND o.source = m.source) AS keep
         FROM models m WHERE m.path IS NULL) k ON k.dup = e.model_id WHERE k.dup != k.keep;
    UPDATE meta SET value = (SELECT MIN(o.id) FROM models o JOIN models a
            ON a.id = CAST(meta.value AS INTEGER)
            WHERE o.path IS NULL AND a.path IS NULL AND o.sha256 = a.sha256
            AND o.source = a.source)
        WHERE key = 'active_model' AND EXISTS (SELECT 1 FROM models a
            WHERE a.id = CAST(meta.value AS INTEGER) AND a.path IS NULL);
    DELETE FROM models WHERE path IS NULL AND id > (SELECT MIN(o.id) FROM models o
        WHERE o.path IS NULL AND o.sha256 = models.sha256 AND o.source = models.source);
    CREATE UNIQUE INDEX models_base ON models(sha256, source) WHERE path IS NULL
    """,
    2: "ALTER TABLE photos ADD COLUMN taken_at TEXT;"
    " ALTER TABLE faces ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;"
    " ALTER TABLE people ADD COLUMN birth_date TEXT;"
    " ALTER TABLE people ADD COLUMN cover_face_id INTEGER"
    " REFERENCES faces(id) ON DELETE SET NULL",
}


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


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid an INSERT on ``cur`` just made."""
    if cur.lastrowid is None:
        raise LibraryError("the insert made no row")
    return cur.lastrowid


def _insert_face(
    c: sqlite3.Connection, photo_id: int, face: NewFace, model_id: int, now: float
) -> int:
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


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _run_script(c: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            c.execute(statement)


def create_library_file(path: Path) -> bool:
    """Make a new, complete library file at ``path``; False if one appeared there first.

    The file is built under a temporary name and hard-linked into place, which fails
    when ``path`` exists: a second process creating the same library at the same
    instant opens the first one's file instead of clashing on half a schema.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.creating")
    try:
        conn = _connect(tmp)
        with conn:
            _run_script(conn, SCHEMA)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        conn.close()  # folds the journal into the file and removes it
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this filesystem: a small window remains
            if path.exists():
                return False
            os.replace(tmp, path)
        fsync_dir(path.parent)
        return True
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


class Library:
    """A face library stored in one SQLite file.

    ``root`` is the photo folder the library describes; photo paths are stored
    relative to it so the folder can move as a whole. A missing file is created
    unless ``create`` is False (then it is an error, like an empty or damaged one).
    """

    def __init__(
        self, path: Path | str, root: Path | str | None = None, *, create: bool = True
    ) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.edited = False  # a durable (user) edit was committed through this object
        try:
            if not self.path.exists():
                if not create:
                    raise LibraryError(f"no library at {self.path}")
                create_library_file(self.path)
            check.check_file(self.path)
            stat = self.path.stat()
            self._identity = (stat.st_dev, stat.st_ino)
            self._open_schema()
            if root is not None:
                self._set_root(Path(root))
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise self.storage_error(exc) from exc
        except BaseException:
            self.close()
            raise

    # -- connections -----------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (sqlite connections must not cross threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.durable = True
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as exc:
            raise self.storage_error(exc) from exc

    def storage_error(self, exc: BaseException) -> LibraryError:
        """``exc`` (from SQLite or the OS) as the LibraryError a user should read."""
        if isinstance(exc, LibraryError):
            return exc
        if is_damage(exc):
            return LibraryDamaged(self.path, f"{exc}{self._journal_hint()}")
        reason = explain(exc, self.path)
        if reason is not None:
            return StorageError(reason)
        return LibraryError(f"{self.path}: not a usable library ({exc})")

    def _journal_hint(self) -> str:
        if not check.wal_has_frames(self.path):
            return ""
        return (
            f"; its journal {self.path.name}-wal may belong to another copy of the library"
            " (copied or synced apart from it): if so, move that file away and try again"
        )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _check_still_there(self) -> None:
        """Stop writing to a library file that was deleted or replaced under us."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            stat = None
        if stat is None or (stat.st_dev, stat.st_ino) != self._identity:
            raise LibraryError(
                f"the library file {self.path} was deleted or replaced while in use;"
                " stopped without writing to it (restore it with `faceapp restore` if it"
                " was not meant to go)"
            )

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction: commits on success, rolls back on any exception.

        ``BEGIN IMMEDIATE`` takes the write lock up front, so a second writer waits
        (busy timeout) instead of failing half-way; if it still cannot get the lock
        it raises :class:`LibraryError` with a clear message. ``durable`` commits
        reach the disk before this returns (a user's edit must survive a power
        cut); bulk writes that a rescan would redo pass False.
        """
        conn = self.conn
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        self._check_still_there()
        try:
            if self._local.durable != durable:
                conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                self._local.durable = durable
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise LibraryError(
                    f"the library {self.path} is busy: another process is writing to it "
                    f"(waited {BUSY_TIMEOUT_MS / 1000:.0f} s); try again when it has finished"
                ) from exc
            raise self.storage_error(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):  # SQLite may have rolled back by itself
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error | OSError) and explain(exc, self.path) is not None:
                raise self.storage_error(exc) from exc
            if isinstance(exc, sqlite3.DatabaseError) and is_damage(exc):
                raise self.storage_error(exc) from exc
            raise
        if durable:
            self.edited = True

    # -- schema ----------------------------------------------------------------------

    def _open_schema(self) -> None:
        """The quick check, read-only: closing a writable connection would fold a foreign
        or damaged journal into the file for good."""
        probe = sqlite3.connect(
            self.path.absolute().as_uri() + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            check.check_schema(probe, self.path)
        except sqlite3.DatabaseError as exc:
            raise self.storage_error(exc) from exc
        except LibraryError as exc:
            if check.wal_has_frames(self.path):
                raise LibraryError(f"{exc}{self._journal_hint()}") from exc
            raise
        finally:
            probe.close()
        version = int(self.get_meta("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"{self.path} was written by a newer Face Album (library version {version}, "
                f"this app understands up to {SCHEMA_VERSION}); please update the app"
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Back the file up, then apply each migration in its own transaction."""
        backup.make_backup(self, f"before-upgrade-v{version}")
        while version < SCHEMA_VERSION:
            script = MIGRATIONS[version]
            with self.transaction() as c:
                row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is not None and int(row[0]) > version:  # another process upgraded it
                    version = int(row[0])
                    continue
                _run_script(c, script)
                version += 1
                c.execute(  # an upsert: a version-0 library has no schema_version row yet
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(version),),
                )

    @overload
    def get_meta(self, key: str, default: str) -> str: ...
    @overload
    def get_meta(self, key: str, default: str | None = None) -> str | None: ...
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
            cur = c.execute(  # a base model (no path) is registered once, even by two processes
                "INSERT INTO models(name, source, origin, sha256, path, preprocess, threshold,"
                " threshold_source, status, metadata, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(sha256, source) WHERE path IS NULL DO NOTHING",
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
            if cur.rowcount == 0:
                return int(
                    c.execute(
                        "SELECT id FROM models WHERE sha256 = ? AND source = ? AND path IS NULL",
                        (sha256, source),
                    ).fetchone()[0]
                )
            return inserted_id(cur)

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
        current = self.get_meta("active_model")
        if current is not None and int(current) != model_id:
            backup.backup_before(self, "model-switch")
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


def library_path_for(folder: Path | None = None, library_path: Path | None = None) -> Path:
    """Which library file a command means: explicit, the folder's, or the last one used."""
    if library_path is None and folder is not None:
        library_path = config.default_library_path(folder)
    if library_path is None:
        last = config.data_dir() / LAST_LIBRARY_FILE
        if not last.exists():
            raise LibraryError("no library yet: scan a folder first or pass --library PATH")
        library_path = Path(last.read_text().strip())
    return Path(library_path).expanduser()


def open_library(folder: Path | None = None, library_path: Path | None = None) -> Library:
    """The library for a folder (default location keyed by the folder) or an explicit file.

    With neither, the most recently used library: commands such as ``faces`` then
    work on what the last ``scan`` produced. Only a folder (a scan, the GUI's open)
    creates a library; without one, a missing file is an error.
    """
    library_path = library_path_for(folder, library_path)
    lib = Library(library_path, root=folder, create=folder is not None)
    with suppress(OSError):  # a convenience only: a read-only data folder must not stop it
        (config.data_dir() / LAST_LIBRARY_FILE).write_text(str(library_path.resolve()))
    with suppress(OSError, sqlite3.Error):  # best effort, like the line above
        clean_finetune_orphans(lib)
    return lib
