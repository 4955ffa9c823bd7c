"""Files the engine writes whole (weights, caches, sidecars) and checks by checksum.

A kill or a full disk mid-write must leave the old file or the whole new one, never
a partial file: the data goes to a temporary file in the same folder, is synced, and
replaces the target in one rename; the folder is synced so the rename survives a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path


def write_atomic(
    path: Path,
    data: bytes,
    *,
    temp: Path | None = None,
    verify: bool = False,
    keep_mode: bool = False,
) -> None:
    """Write ``data`` to ``path``: readers see the old file or the whole new one.

    ``temp`` names the temporary file (default: a unique hidden name beside ``path``);
    a fixed name lets a later run find a killed write's leftover. ``verify`` reads the
    written file back and keeps the old one unless it is ``data`` to the byte (a user's
    photo or sidecar); ``keep_mode`` gives the new file the old one's permissions.
    """
    if temp is None:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        handle = os.fdopen(fd, "wb")
        temp = Path(name)
    else:
        handle = open(temp, "wb")  # noqa: SIM115  closed below, before the rename
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if verify and temp.read_bytes() != data:
            raise OSError(f"{path.name}: the written file did not read back as written")
        if keep_mode:
            os.chmod(temp, os.stat(path).st_mode & 0o7777)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def process_temp_path(path: Path) -> Path:
    """The hidden temporary name this process writes ``path`` under, with its pid in it,
    so that a later start can tell a dead writer's leftover from a live one's."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


_PROCESS_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.tmp$")


def process_temp_writer(name: str) -> tuple[str, int] | None:
    """(target file name, writer pid) of a name made by :func:`process_temp_path`."""
    m = _PROCESS_TEMP.match(name)
    return (m["target"], int(m["pid"])) if m else None


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where folders cannot be synced)."""
    with contextlib.suppress(OSError):  # not supported on every platform (Windows)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
