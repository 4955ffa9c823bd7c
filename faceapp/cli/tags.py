"""Face tags and export commands: write-tags, tag-conflicts, export."""

from __future__ import annotations

import argparse
from pathlib import Path

from faceapp.cli import add_json_option, add_library_option, echo, person_id, print_json
from faceapp.engine.library import open_library


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "write-tags",
        help="write the confirmed faces as XMP face tags (sidecars, or into JPEGs with --embed)",
    )
    p.add_argument(
        "--person",
        action="append",
        default=None,
        metavar="NAME",
        help="only the photos of this person (repeatable; default: every person)",
    )
    p.add_argument("--embed", action="store_true", help="write into JPEG files, not sidecars")
    p.add_argument("--dry-run", action="store_true", help="list what would change, write nothing")
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_write_tags)

    p = sub.add_parser(
        "tag-conflicts", help="face tags in the photos that disagree with your own labels"
    )
    p.add_argument("--clear", action="store_true", help="forget the listed conflicts")
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_tag_conflicts)

    p = sub.add_parser("export", help="copy or link the photos of a person into a folder")
    p.add_argument("--person", required=True, metavar="NAME", help="a person's name or p<ID>")
    p.add_argument("--to", required=True, type=Path, metavar="DIR")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--copy", dest="mode", action="store_const", const="copy", default="copy")
    mode.add_argument("--link", dest="mode", action="store_const", const="link")
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_export)


def cmd_write_tags(args: argparse.Namespace) -> int:
    from faceapp.engine import tag_write

    lib = open_library(None, args.library)
    ids = None if args.person is None else [person_id(lib, n) for n in args.person]
    report = tag_write.write_tags(lib, person_ids=ids, embed=args.embed, dry_run=args.dry_run)
    if args.json:
        print_json(report.as_dict())
    else:
        verb = "would write" if args.dry_run else "wrote"
        for change in report.changes:
            echo(f"  {change['path']} -> {change['target']}: {', '.join(change['names'])}")
        echo(
            f"{report.photos} photos: {verb} {report.written}, {report.skipped} skipped,"
            f" {len(report.errors)} errors"
        )
        for path, reason in report.errors:
            echo(f"  {path}: {reason}")
    return 1 if report.errors else 0


def cmd_tag_conflicts(args: argparse.Namespace) -> int:
    from faceapp.engine import face_tags

    lib = open_library(None, args.library)
    found = face_tags.conflicts(lib)
    if args.clear:
        face_tags.clear_conflicts(lib)
    if args.json:
        print_json(
            {
                "conflicts": [
                    {
                        "photo": c.photo,
                        "face": c.face_id,
                        "name": c.name,
                        "reason": c.reason,
                        "source": c.source,
                    }
                    for c in found
                ],
                "cleared": bool(args.clear),
            }
        )
        return 0
    if not found:
        echo("no conflicts")
    for c in found:
        echo(f"{c.photo}  face {c.face_id}: the file says {c.name!r} ({c.source}), but {c.reason}")
    if args.clear and found:
        echo(f"cleared {len(found)} conflicts")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from faceapp.engine import export

    lib = open_library(None, args.library)
    report = export.export_person(lib, person_id(lib, args.person), args.to, args.mode)
    if args.json:
        print_json(report.as_dict())
    else:
        echo(f"{report.exported} of {report.photos} photos exported to {args.to}")
        for path, reason in report.errors:
            echo(f"  {path}: {reason}")
    return 1 if report.errors else 0
