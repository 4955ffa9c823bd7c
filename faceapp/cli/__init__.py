"""The ``faceapp`` command line: the same engine calls as the GUI, for scripts and tools.

Expected failures (unreadable photo, no face, busy library, missing weights) print
one line to stderr and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from faceapp.errors import FaceAppError


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
    from faceapp.cli import finetune, people, scan

    parser = argparse.ArgumentParser(
        prog="faceapp", description="Face Album: find, group and name the people in your photos."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (scan, people, finetune):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CLIError as exc:
        print(f"faceapp: {exc}", file=sys.stderr)
        return exc.code
    except FaceAppError as exc:
        print(f"faceapp: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("faceapp: interrupted", file=sys.stderr)
        return 130
