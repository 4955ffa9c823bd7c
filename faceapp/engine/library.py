"""The library: one SQLite file holding photos, faces, embeddings, people and history.

Every change goes through :meth:`Library.transaction`, so it lands whole or not at
all (WAL journal, ``BEGIN IMMEDIATE``). Each thread gets its own connection, so
workers and the GUI thread can read while one of them writes.

A library file is never made by accident (:mod:`faceapp.engine.library_schema` builds
it whole, and upgrades it); the photo and face rows are read and written by
:class:`faceapp.engine.library_photos.PhotoRows`, a part of :class:`Library`.
Every open runs the quick check of :mod:`faceapp.engine.check`. The user's own edits
commit with ``synchronous=FULL`` (the journal is on the disk before the call
returns); bulk scan writes, which a rescan redoes, use ``NORMAL``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from faceapp import config
from faceapp.engine import backup, check
from faceapp.engine import library_schema as schema
from faceapp.engine.library_photos import PhotoRows
from faceapp.engine.library_schema import connect, create_library_file, inserted_id, run_script
from faceapp.engine.orphans import clean_finetune_orphans
from faceapp.engine.storage import LibraryDamaged, LibraryError, StorageError, explain, is_damage

LAST_LIBRARY_FILE = "last_library"  # in the data dir: the library commands default to
DEFAULT_THRESHOLD = 1.1  # squared L2; only used when no model threshold is known


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


class Library(PhotoRows):
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
            return connect(self.path)
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
                    f"the library {self.path} is busy: another process is writing to it (waited"
                    f" {schema.BUSY_TIMEOUT_MS / 1000:.0f} s); try again when it has finished"
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
            self.path.absolute().as_uri() + "?mode=ro",
            uri=True,
            timeout=schema.BUSY_TIMEOUT_MS / 1000,
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
        if version > schema.SCHEMA_VERSION:
            raise LibraryError(
                f"{self.path} was written by a newer Face Album (library version {version}, "
                f"this app understands up to {schema.SCHEMA_VERSION}); please update the app"
            )
        if version < schema.SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Back the file up, then apply each migration in its own transaction."""
        backup.make_backup(self, f"before-upgrade-v{version}")
        while version < schema.SCHEMA_VERSION:
            script = schema.MIGRATIONS[version]
            with self.transaction() as c:
                row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is not None and int(row[0]) > version:  # another process upgraded it
                    version = int(row[0])
                    continue
                run_script(c, script)
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

    def active_threshold(self) -> float:
        """The active version's calibrated threshold: grouping, Review and naming cut at it."""
        model = self.active_model()
        return float(model.threshold) if model is not None else DEFAULT_THRESHOLD

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
