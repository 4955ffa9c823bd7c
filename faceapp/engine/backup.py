"""Rolling backups of a library, and going back to one when the library is damaged.

A backup is a ``VACUUM INTO`` copy in the data directory (never next to the photos):
a consistent snapshot even while another process writes, compact, and made by
reading every row, so damage in the source shows up as a failed backup instead of
a copied one. Backups are taken before risky operations (schema upgrade,
re-clustering, switching or fine-tuning a model) and after a session's edits (at
most one an hour); the newest :data:`KEEP` are kept.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from faceapp import config
from faceapp.engine.check import full_check
from faceapp.engine.files import process_temp_path
from faceapp.engine.storage import LibraryDamaged, LibraryError, StorageError, explain, is_damage

if TYPE_CHECKING:
    from faceapp.engine.library import Library

BACKUPS_DIR = "backups"
KEEP = 4
AFTER_EDITS_EVERY_S = 3600.0
BEFORE_RISKY_GAP_S = 600.0  # a backup this fresh serves for the next risky operation too
_NAME = re.compile(r"^(?P<stamp>\d{8}-\d{6}-\d{6})\.(?P<reason>[a-z0-9-]+)\.sqlite$")


@dataclass(frozen=True)
class Backup:
    path: Path
    created: float  # seconds since the epoch
    reason: str

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created))


def backup_dir(library_path: Path) -> Path:
    """Where one library's backups go: named after the file, keyed by its absolute path."""
    library_path = Path(library_path).expanduser().absolute()
    key = hashlib.sha1(str(library_path).encode()).hexdigest()[:10]
    return config.data_dir() / BACKUPS_DIR / f"{library_path.stem}-{key}"


def backups(library_path: Path) -> list[Backup]:
    """The backups of a library, newest first."""
    folder = backup_dir(library_path)
    found = []
    for path in folder.glob("*.sqlite") if folder.is_dir() else ():
        m = _NAME.match(path.name)
        if m:
            stamp = time.mktime(time.strptime(m["stamp"][:15], "%Y%m%d-%H%M%S"))
            found.append(Backup(path, stamp + int(m["stamp"][16:]) / 1e6, m["reason"]))
    return sorted(found, key=lambda b: b.created, reverse=True)


def make_backup(lib: Library, reason: str) -> Path:
    """Copy the library into its backup folder now; raises LibraryError on failure.

    A damaged library raises :class:`LibraryDamaged` (its rows could not all be
    read); a full or read-only disk raises :class:`StorageError`. Nothing is left
    behind by a failed backup.
    """
    folder = backup_dir(lib.path)
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"
    final = folder / f"{stamp}.{reason}.sqlite"
    tmp = process_temp_path(final)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(lib.path, timeout=10, isolation_level=None)
        try:  # a copy of a damaged file is no backup: look at every page first
            problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                raise LibraryDamaged(lib.path, f"found while backing it up: {problem}")
            conn.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            conn.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except (sqlite3.Error, OSError) as exc:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        if is_damage(exc):
            raise LibraryDamaged(lib.path, f"found while backing it up: {exc}") from exc
        reason_text = explain(exc, folder)
        raise StorageError(f"could not back up the library: {reason_text or exc}") from exc
    lib.edited = False  # the copy holds every edit committed so far
    _prune(lib.path)
    return final


def _prune(library_path: Path) -> None:
    for old in backups(library_path)[KEEP:]:
        old.path.unlink(missing_ok=True)


def backup_before(lib: Library, operation: str) -> Path | None:
    """A backup before a risky operation; the operation must not start without one.

    None when a backup younger than :data:`BEFORE_RISKY_GAP_S` exists already.
    """
    newest = backups(lib.path)
    if newest and time.time() - newest[0].created < BEFORE_RISKY_GAP_S:
        return None
    try:
        return make_backup(lib, f"before-{operation}")
    except StorageError as exc:
        raise StorageError(f"{exc}; {operation} was not started") from exc


def backup_after_edits(lib: Library) -> Path | None:
    """A backup after a session that edited the library, at most one per hour."""
    if not lib.edited:
        return None
    newest = backups(lib.path)
    if newest and time.time() - newest[0].created < AFTER_EDITS_EVERY_S:
        return None
    return make_backup(lib, "after-edits")


def check_backup(backup: Backup) -> list[str]:
    """The problems of one backup file (empty when it is sound)."""
    try:
        conn = sqlite3.connect(f"file:{backup.path}?mode=ro", uri=True)
        try:
            return full_check(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [str(exc)]


def newest_good(library_path: Path) -> Backup | None:
    """The newest backup that passes the full check."""
    for candidate in backups(library_path):
        if not check_backup(candidate):
            return candidate
    return None


def restore(library_path: Path, backup: Backup) -> Path | None:
    """Put ``backup`` in place of the library; returns where the old file was moved.

    The old file is kept (renamed ``<name>.damaged-<time>``, with its journal), never
    deleted: what it still holds may be worth rescuing by hand.
    """
    library_path = Path(library_path).expanduser()
    if check_backup(backup):
        raise LibraryError(f"the backup {backup.path} is damaged too; choose another")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = library_path.with_name(f"{library_path.name}.damaged-{stamp}")
    tmp = library_path.with_name(f".{library_path.name}.restoring")
    try:
        with open(backup.path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        moved = library_path.exists()
        if moved:
            os.replace(library_path, aside)
        for suffix in ("-wal", "-shm"):
            journal = library_path.with_name(library_path.name + suffix)
            if journal.exists():
                os.replace(journal, aside.with_name(aside.name + suffix))
        os.replace(tmp, library_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(
            f"could not restore the backup: {explain(exc, library_path) or exc}"
        ) from exc
    return aside if moved else None
