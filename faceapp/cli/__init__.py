"""The ``faceapp`` command line: the same engine calls as the GUI, for scripts and tools.

Expected failures (unreadable photo, no face, busy library, missing weights, a full
or read-only disk) print one line to stderr and exit non-zero; tracebacks are for bugs
only.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from faceapp.config import DeviceError
from faceapp.engine.images import ImageError
from faceapp.engine.library import LibraryError
from faceapp.engine.storage import LibraryDamaged, explain, is_damage
from faceapp.engine.weights import WeightsError


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


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def print_json(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def build_parser() -> argparse.ArgumentParser:
    from faceapp.cli import finetune, maintenance, models, naming, people, scan, tags

    parser = argparse.ArgumentParser(
        prog="faceapp", description="Face Album: find, group and name the people in your photos."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (scan, people, naming, finetune, models, maintenance, tags):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CLIError as exc:
        print(f"faceapp: {exc}", file=sys.stderr)
        return exc.code
    except ImageError as exc:
        print(f"faceapp: {exc}", file=sys.stderr)
        return 2
    except (LibraryError, WeightsError, DeviceError) as exc:
        print(f"faceapp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("faceapp: interrupted", file=sys.stderr)
        return 130
    except (sqlite3.Error, OSError) as exc:  # the disk or the file, not a bug: say which
        message = _storage_message(exc, args)
        if message is None:
            raise
        print(f"faceapp: {message}", file=sys.stderr)
        return 1
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
        print(f"faceapp: warning: {exc}", file=sys.stderr)
