"""Library care: ``check`` (is the file sound?) and ``restore`` (go back to a backup).

Both work on the file itself rather than through :func:`open_library`, which refuses a
damaged library: these are the commands to run when it does.
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from faceapp.cli import CLIError, add_json_option, add_library_option, echo, print_json
from faceapp.engine import backup, check
from faceapp.engine.library import library_path_for
from faceapp.engine.storage import LibraryError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check the whole library file for damage")
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("restore", help="replace a damaged library by its newest good backup")
    p.add_argument("--list", action="store_true", help="list the backups and stop")
    p.add_argument("--backup", type=int, default=None, metavar="N", help="the N-th of --list")
    p.add_argument("--force", action="store_true", help="restore even if the library is sound")
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_restore)


def library_problems(path) -> list[str]:
    """Everything wrong with the library file at ``path`` (empty when it is sound)."""
    try:
        check.check_file(path)
    except LibraryError as exc:
        if not path.exists() or path.stat().st_size == 0:
            return [str(exc)]
        first = [str(exc)]
    else:
        first = []
    try:
        conn = sqlite3.connect(path, timeout=10)
        try:
            return first + check.full_check(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [*first, str(exc)]


def cmd_check(args: argparse.Namespace) -> int:
    path = library_path_for(None, args.library)
    t0 = time.perf_counter()
    problems = library_problems(path)
    seconds = time.perf_counter() - t0
    good = backup.newest_good(path) if problems else None
    if args.json:
        print_json(
            {
                "library": str(path),
                "ok": not problems,
                "problems": problems,
                "seconds": round(seconds, 2),
                "backups": len(backup.backups(path)),
                "newest_good_backup": str(good.path) if good else None,
            }
        )
    elif not problems:
        echo(f"{path}: no damage found (checked in {seconds:.1f} s)")
    else:
        echo(f"{path}: damaged")
        for line in problems[:20]:
            echo(f"  {line}")
        if good:
            echo(f"restore the backup of {good.when} with: faceapp restore --library {path}")
        else:
            echo("no good backup of this library was found")
    return 0 if not problems else 1


def cmd_restore(args: argparse.Namespace) -> int:
    path = library_path_for(None, args.library)
    found = backup.backups(path)
    if args.list:
        rows = [
            {"n": i, "when": b.when, "reason": b.reason, "path": str(b.path)}
            for i, b in enumerate(found, 1)
        ]
        if args.json:
            print_json({"library": str(path), "backups": rows})
        for r in [] if args.json else rows:
            echo(f"{r['n']:>3}  {r['when']}  {r['reason']:<22} {r['path']}")
        return 0
    if not found:
        raise CLIError(f"there is no backup of {path}")
    if args.backup is not None:
        if not 1 <= args.backup <= len(found):
            raise CLIError(f"--backup must be between 1 and {len(found)} (see --list)", 2)
        chosen = found[args.backup - 1]
    else:
        chosen = backup.newest_good(path)
        if chosen is None:
            raise CLIError(f"none of the {len(found)} backups of {path} is sound")
    if path.exists() and not args.force and not library_problems(path):
        raise CLIError(
            f"{path} has no damage: restoring would undo what changed since {chosen.when};"
            " add --force to restore anyway",
            2,
        )
    aside = backup.restore(path, chosen)
    if args.json:
        print_json({"restored": str(chosen.path), "when": chosen.when, "kept": str(aside)})
    else:
        echo(f"restored {path} from the backup of {chosen.when} ({chosen.reason})")
        if aside:
            echo(f"the old file is kept as {aside}")
        echo(f"changes made after {chosen.when} are not in the restored library")
    return 0
