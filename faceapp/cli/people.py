"""People commands: cluster, people, name, merge, move, reject, undo, redo.

Each one is a thin wrapper over :mod:`faceapp.engine.people` / ``cluster``: the GUI
calls the same functions. Groups are named ``c12`` / ``cluster:12`` (an automatic
cluster), ``p3`` / ``person:3`` or a person's exact name.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from faceapp.cli import (
    CLIError,
    add_common,
    echo,
    open_for_edits,
    print_json,
)
from faceapp.engine import album, naming, oplog, people
from faceapp.engine.grouping import LEVELS, grouping_params
from faceapp.engine.library import Library


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="group the unconfirmed faces into clusters (HDBSCAN)")
    p.add_argument("--min-cluster-size", type=int, default=None, help="HDBSCAN min_cluster_size")
    p.add_argument("--min-samples", type=int, default=None, help="HDBSCAN min_samples")
    p.add_argument(
        "--grouping",
        type=int,
        choices=sorted(LEVELS),
        default=0,
        help="-2 much looser ... 0 balanced ... 2 much stricter",
    )
    add_common(p, cmd_cluster)

    p = sub.add_parser("people", help="list people and clusters with their face counts")
    add_common(p, cmd_people)

    p = sub.add_parser("name", help="name a cluster (it becomes a person) or rename a person")
    p.add_argument("group", metavar="CLUSTER_OR_PERSON", help="c<ID>, p<ID> or a person's name")
    p.add_argument("name", metavar="NAME")
    add_common(p, cmd_name)

    p = sub.add_parser("merge", help="merge a person or cluster into another")
    p.add_argument("source", metavar="SOURCE", help="c<ID>, p<ID> or a person's name")
    p.add_argument("target", metavar="TARGET", help="c<ID>, p<ID> or a person's name")
    add_common(p, cmd_merge)

    p = sub.add_parser("move", help="confirm faces for a person")
    p.add_argument("faces", metavar="FACE_ID", type=int, nargs="+")
    p.add_argument("--to", required=True, metavar="PERSON", help="p<ID> or a person's name")
    p.add_argument("--create", action="store_true", help="a new person when nobody has NAME")
    add_common(p, cmd_move)

    p = sub.add_parser("reject", help='"not this person": remove faces from a person, remembered')
    p.add_argument("faces", metavar="FACE_ID", type=int, nargs="+")
    p.add_argument("--from", dest="person", required=True, metavar="PERSON")
    add_common(p, cmd_reject)

    p = sub.add_parser("undo", help="undo the last people operation")
    add_common(p, cmd_undo)

    p = sub.add_parser("redo", help="redo the last undone people operation")
    add_common(p, cmd_redo)


def _person_ref(lib: Library, text: str) -> int:
    kind, ident = album.parse_group_ref(lib, text)
    if kind != "person":
        raise CLIError(f"{text!r} is a cluster; name it first (faceapp name {text} NAME)", 2)
    return ident


def _done(args: argparse.Namespace, changes: oplog.OpChanges, **extra: object) -> int:
    """Print what the operation did; with --json also exactly which rows it changed."""
    if args.json:
        print_json(
            {
                "done": changes.status_text,
                "faces": sorted(changes.faces),
                "people": sorted(changes.people),
                "clusters": sorted(changes.clusters),
                **extra,
            }
        )
    else:
        echo(changes.status_text)
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    overrides = {
        k: v
        for k, v in (
            ("min_cluster_size", args.min_cluster_size),
            ("min_samples", args.min_samples),
        )
        if v is not None
    }
    if any(v < 1 for v in overrides.values()):
        raise CLIError("--min-cluster-size and --min-samples must be at least 1", 2)
    progress = None if args.json or not sys.stderr.isatty() else _stderr
    from faceapp.engine.cluster import recluster

    params = dataclasses.replace(grouping_params(args.grouping), **overrides)
    s = recluster(lib, params, progress=progress)
    if args.json:
        print_json(
            {"clusters": s.clusters, "unknown": s.unknown, "people": s.people, "seconds": s.seconds}
        )
    else:
        held = f", {s.suggested} of them suggested for named people" if s.suggested else ""
        print(
            f"{s.clusters} clusters, {s.unknown} unknown faces{held}, {s.people} people "
            f"({s.faces} faces in {s.seconds:.1f} s)"
        )
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_people(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    groups = album.groups(lib)
    if args.json:
        print_json(
            {
                "people": [
                    {"id": g.id, "name": g.name, "faces": g.count, "hidden": g.hidden}
                    for g in groups
                    if g.kind == "person"
                ],
                "clusters": [
                    {"id": g.id, "ref": f"c{g.id}", "faces": g.count}
                    for g in groups
                    if g.kind == "cluster"
                ],
                "unknown": groups[-1].count,
            }
        )
        return 0
    for g in groups:
        ref = {"person": f"p{g.id}", "cluster": f"c{g.id}", "unknown": ""}[g.kind]
        hidden = "  (hidden)" if g.hidden else ""
        echo(f"{ref:>8}  {g.count:>6}  {g.label}{hidden}")
    return 0


def cmd_name(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    kind, ident = album.parse_group_ref(lib, args.group)
    if kind == "cluster":  # faces that do not fit the group are left out, for review
        target = _named_person(lib, args.name)
        if target is None:
            result = naming.name_cluster(lib, ident, args.name)
        else:  # p<ID> as `review` prints it, or a name: the cluster joins that person
            result = naming.name_cluster(lib, ident, person_id=target)
        return _done(args, result.changes, person=result.person_id, review=result.to_review)
    return _done(args, people.rename_person(lib, ident, args.name), person=ident)


def _named_person(lib: Library, text: str) -> int | None:
    """The person ``text`` refers to (p<ID>, person:<ID> or a name), None when nobody."""
    try:
        kind, ident = album.parse_group_ref(lib, text)
    except album.PeopleError:
        return None
    return ident if kind == "person" else None


def cmd_merge(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    source = album.parse_group_ref(lib, args.source)
    target = album.parse_group_ref(lib, args.target)
    return _done(args, people.merge(lib, source, target))


def cmd_move(args: argparse.Namespace) -> int:
    from faceapp.cli.naming import name_faces, result_json

    lib = open_for_edits(args)
    result = name_faces(lib, args.faces, args.to, args.create)
    return _done(args, result.changes, **result_json(result))


def cmd_reject(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    return _done(args, people.reject_faces(lib, args.faces, _person_ref(lib, args.person)))


def cmd_undo(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    changes = oplog.undo(lib)
    if changes is None:
        raise CLIError("nothing to undo", 1)
    return _done(args, changes)


def cmd_redo(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    changes = oplog.redo(lib)
    if changes is None:
        raise CLIError("nothing to redo", 1)
    return _done(args, changes)
