"""The ``faceapp`` command line: the same engine calls as the GUI, for scripts and tools.

Expected failures (unreadable photo, no face, busy library, missing weights, a full
or read-only disk) print one line to stderr and exit non-zero; tracebacks are for bugs
only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from faceapp.cli.terminal import safe
from faceapp.engine.library import LibraryError
from faceapp.engine.storage import LibraryDamaged, explain, is_damage
from faceapp.errors import FaceAppError
from faceapp.logsetup import setup_logging

if TYPE_CHECKING:
    from faceapp.engine.library import Library

log = logging.getLogger("faceapp.cli")


class CLIError(Exception):
    """An expected failure: its message goes to stderr, ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_library_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--library",
        type=Path,
        default=None,
        help="library file (default: the library of the last scanned folder)",
    )


def add_common(p: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int]) -> None:
    """The options every library command takes, and its handler."""
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=handler)


def open_for_edits(args: argparse.Namespace) -> Library:
    """The library a command edits; :func:`main` backs it up after the edits."""
    from faceapp.engine.library import open_library

    args.opened_library = open_library(None, args.library)
    return args.opened_library


def person_id(lib: Library, text: str) -> int:
    """A person given by name or id on the command line (a cluster is an error)."""
    from faceapp.engine import album

    kind, ident = album.parse_group_ref(lib, text)
    if kind != "person":
        raise CLIError(f"{text!r} is a cluster, not a person", 2)
    return ident


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def print_json(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def build_parser() -> argparse.ArgumentParser:
    from faceapp.cli import doctor, finetune, maintenance, models, naming, people, scan, tags

    parser = argparse.ArgumentParser(
        prog="faceapp", description="Face Album: find, group and name the people in your photos."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (scan, people, naming, finetune, models, maintenance, tags, doctor):
        module.register(sub)
    return parser


def echo(*parts: object, file=None, end: str = "\n") -> None:
    """Print text that may hold file or person names, control characters escaped."""
    print(" ".join(safe(p) for p in parts), file=file or sys.stdout, end=end)


class _Stderr(logging.StreamHandler):
    """The engine's warnings on the terminal too, escaped; Python warnings only in the log."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.addFilter(lambda record: record.name != "py.warnings")

    @property
    def stream(self):  # whatever sys.stderr is now (tests replace it)
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        return f"faceapp: {record.levelname.lower()}: {safe(record.getMessage())}"


_stderr = _Stderr()


def _fail(exc: object, code: int) -> int:
    log.info("failed: %s", exc)
    echo(f"faceapp: {exc}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if _stderr not in logging.getLogger().handlers:
        logging.getLogger().addHandler(_stderr)
    log.info("faceapp %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.handler(args) or 0)
    except CLIError as exc:
        return _fail(exc, exc.code)
    except FaceAppError as exc:
        return _fail(exc, exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # the reader stopped early (faceapp people | head): no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit's flush
        return 141
    except (sqlite3.Error, OSError) as exc:  # the disk or the file, not a bug: say which
        message = _storage_message(exc, args)
        if message is None:
            log.exception("faceapp %s failed", args.command)
            raise
        return _fail(message, 1)
    except Exception:
        log.exception("faceapp %s failed", args.command)
        raise
    finally:
        _backup_after_edits(args)


def _storage_message(exc: BaseException, args: argparse.Namespace) -> str | None:
    from faceapp.engine.library import library_path_for

    try:
        path = library_path_for(None, getattr(args, "library", None))
    except (LibraryError, OSError):
        path = Path(getattr(exc, "filename", None) or ".")
    if is_damage(exc):
        return str(LibraryDamaged(path, str(exc)))
    return explain(exc, path)


def _backup_after_edits(args: argparse.Namespace) -> None:
    """The rolling backup after a command that edited the library (see engine/backup.py)."""
    lib = getattr(args, "opened_library", None)
    if lib is None or not lib.edited:
        return
    from faceapp.engine import backup

    try:
        backup.backup_after_edits(lib)
    except LibraryError as exc:
        echo(f"faceapp: warning: {exc}", file=sys.stderr)
