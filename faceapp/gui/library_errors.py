"""Library read and write errors in plain words: what happened and what to do.

SQLite's own text ("database disk image is malformed", "disk I/O error") means
nothing to most people. The message says what it means for their album and what to
do about it; SQLite's words stay in the log and under "Show Details…" (the error
box shows the newest logged traceback). A damaged file is not an error box but the
offer to go back to its newest good backup (``LibrarySession.damaged``).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRY_AGAIN = "then try again; everything stored so far is kept."
PLAIN = {
    "full": f"The disk holding the library is full. Free some space on it, {TRY_AGAIN}",
    "read-only": f"The library is on a read-only disk or folder. Make it writable, {TRY_AGAIN}",
    "no-permission": (
        f"Face Album may not write to the library or its folder. Give your user write access"
        f" to them, {TRY_AGAIN}"
    ),
    "locked": (
        "Another program is using the library (a second Face Album, a backup or sync"
        f" tool). Close it, {TRY_AGAIN}"
    ),
    "io": (
        "The disk reported an error while reading the library: it may be failing or"
        f" unplugged. Check the disk, {TRY_AGAIN}"
    ),
    "cannot-open": "The library file cannot be opened: it or its folder is missing or not"
    " accessible. Check that the disk holding it is connected.",
}


@dataclass(frozen=True)
class LibraryProblem:
    """What to tell the user about a library error."""

    text: str
    damaged: bool  # the file is damaged: offer a backup instead of an error box


def library_problem(exc: BaseException, library_path: Path) -> LibraryProblem | None:
    """``exc`` as a plain message, or None when it is no library read or write error."""
    from faceapp.engine.storage import LibraryDamaged, StorageError, cause, is_damage

    # the engine's other LibraryErrors (busy, newer schema, replaced file) are plain already
    if not isinstance(exc, sqlite3.Error | StorageError | LibraryDamaged):
        return None
    name = Path(library_path).name
    if isinstance(exc, LibraryDamaged) or is_damage(exc) or is_damage(exc.__cause__):
        return LibraryProblem(
            f"The library {name} is damaged: part of the file can no longer be read."
            " Nothing was written to it.",
            damaged=True,
        )
    found = cause(exc.__cause__ or exc, library_path)
    if found is not None:
        return LibraryProblem(PLAIN[found[0]], damaged=False)
    return LibraryProblem(
        f"Face Album could not read the library {name}. Try again; if it keeps"
        " happening, Show Details… tells what went wrong.",
        damaged=False,
    )


def report(session: Any, title: str, exc: BaseException, path: Path | None = None) -> None:
    """Tell the user about ``exc`` from work on the library at ``path`` (default: the
    open one): a damaged file offers its newest good backup (once per opening), a
    storage fault or a read error says what to do; any other error as before."""
    where = path if path is not None else getattr(session.lib, "path", None)
    problem = library_problem(exc, Path(where)) if where is not None else None
    if problem is None:
        session.error.emit(title, str(exc) or type(exc).__name__)
        return
    log.error("%s: %s", title, exc, exc_info=exc)  # SQLite's words: log, Show Details…
    if not problem.damaged:
        session.error.emit(title, problem.text)
    elif not session.damage_offered:
        session.damage_offered = True
        session.damaged.emit(Path(where), problem.text)
    else:  # asked once already ("Not Now"): the status bar says why this failed
        session.message.emit(problem.text)
