"""Storage faults in plain words: disk full, read-only, no permission, locked, damaged.

SQLite and the OS report these as ``sqlite3.OperationalError("disk I/O error")`` or
``OSError(errno 28)``; a user needs the cause and what to do. :func:`explain` turns
such an exception into one line, looking at the disk itself when SQLite's own word
is vague (a full disk often surfaces as "disk I/O error" while the ``-shm`` file is
being grown). The CLI and the GUI both show what it returns.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from faceapp.errors import FaceAppError


class LibraryError(FaceAppError):
    """A library that cannot be opened or used (newer schema, locked, not a library)."""


class StorageError(LibraryError):
    """The disk refused a read or write: full, read-only, no permission, locked, failing."""


class LibraryDamaged(LibraryError):
    """The library file is damaged; ``faceapp check`` and ``faceapp restore`` help."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"the library {path} is damaged ({detail}); nothing was written to it."
            f" Run `faceapp restore --library {path}` to go back to the newest good backup"
            f" (`faceapp check --library {path}` shows the damage)"
        )
        self.path = Path(path)
        self.detail = detail


FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM}
# Free space below this on the library's disk counts as full: SQLite needs room for a
# journal page or two, and a filesystem keeps a reserve for root.
NEARLY_FULL_BYTES = 1 << 20


def _existing(path: Path) -> Path:
    """The path itself or its nearest existing parent (statvfs needs an existing path)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_is_full(path: Path) -> bool:
    try:
        st = os.statvfs(_existing(path))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < NEARLY_FULL_BYTES


def disk_is_read_only(path: Path) -> bool:
    try:
        st = os.statvfs(_existing(path))
    except OSError:
        return False
    return bool(st.f_flag & os.ST_RDONLY)


def _full(path: Path) -> str:
    return (
        f"the disk holding {path} is full; free some space on it and run the command"
        " again (everything stored so far is kept)"
    )


def _read_only(path: Path) -> str:
    return (
        f"{path} is on a read-only disk or folder; make it writable (or copy the library"
        " to a writable disk and pass --library) and run the command again"
    )


def _no_permission(path: Path) -> str:
    return (
        f"no permission to write {path} or its folder; give your user write access"
        " (the library's folder must be writable too, for its -wal and -shm files)"
    )


def _locked(path: Path) -> str:
    return (
        f"the library {path} is locked by another program (a second Face Album, a"
        " backup or sync tool, or an SQLite browser); close it and run the command again"
    )


def cause(exc: BaseException, path: Path | str) -> tuple[str, Path] | None:
    """The storage cause of ``exc`` and the file it concerns, or None if it is not one.

    Causes: ``full``, ``read-only``, ``no-permission``, ``locked``, ``io`` (the disk
    reported an input/output error), ``cannot-open``. ``path`` is the file that was
    being read or written (the library, a backup, a settings file). The CLI words them
    with :func:`explain`, the GUI in its own words.
    """
    path = Path(path)
    if isinstance(exc, OSError):
        where = Path(exc.filename) if exc.filename else path
        if exc.errno in FULL_ERRNOS:
            return "full", where
        if exc.errno == errno.EROFS:
            return "read-only", where
        if exc.errno in PERMISSION_ERRNOS:
            return ("read-only" if disk_is_read_only(where) else "no-permission"), where
        if exc.errno == errno.EIO:
            return "io", where
        return None
    if not isinstance(exc, sqlite3.Error):
        return None
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name == "SQLITE_FULL" or "disk is full" in text:
        return "full", path
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return ("read-only" if disk_is_read_only(path) else "no-permission"), path
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return "locked", path
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) or "disk I/O error" in text:
        # SQLite's word for many causes: ask the disk which one it is.
        if disk_is_full(path):
            return "full", path
        if disk_is_read_only(path):
            return "read-only", path
        folder = path.parent if path.parent.exists() else _existing(path)
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            return "no-permission", path
        if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
            return "cannot-open", path
        return "io", path
    return None


def explain(exc: BaseException, path: Path | str) -> str | None:
    """One line naming the storage cause of ``exc`` and what to do, or None if it is not one."""
    if isinstance(exc, StorageError | LibraryDamaged):
        return str(exc)
    found = cause(exc, path)
    if found is None:
        return None
    kind, where = found
    if kind == "io":
        if isinstance(exc, OSError):
            return f"the disk reported an input/output error for {where}; it may be failing"
        return (
            f"the disk reported an input/output error for {where} ({exc}); it may be"
            f" failing or unplugged. Check the disk, then run `faceapp check --library {where}`"
        )
    if kind == "cannot-open":
        return f"cannot open {where} (the file or its folder is missing or not accessible)"
    return {
        "full": _full,
        "read-only": _read_only,
        "no-permission": _no_permission,
        "locked": _locked,
    }[kind](where)


def is_damage(exc: BaseException) -> bool:
    """Is ``exc`` SQLite saying the file's content is damaged (not the disk refusing)?"""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.DatabaseError) and (
        name in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
        or "malformed" in str(exc)
        or "not a database" in str(exc)
    )
