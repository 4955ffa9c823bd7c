"""Naming commands: add-face, review, accept-likely, reject-cluster, outliers, photos,
problems, retry, birthday, cover.

Thin wrappers over :mod:`faceapp.engine.naming`, ``review``, ``photos``,
``birthdays`` and ``add_face``: the GUI calls the same functions. Engines that need
the networks (add-face, retry) are imported only by the commands that use them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from faceapp.cli import (
    CLIError,
    add_common,
    echo,
    open_for_edits,
    person_id,
    print_json,
)
from faceapp.engine import album, birthdays, naming, people, photos, review
from faceapp.engine.library import Library
from faceapp.errors import FaceAppError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-face", help="add a face the detector missed (a box on the photo)")
    p.add_argument("photo", type=Path, metavar="PHOTO_PATH")
    p.add_argument(
        "--box",
        nargs=4,
        type=float,
        required=True,
        metavar=("X1", "Y1", "X2", "Y2"),
        help="the face, in display pixels of the photo (after EXIF rotation)",
    )
    p.add_argument("--to", metavar="NAME", help="and confirm it for this person")
    p.add_argument("--create", action="store_true", help="create NAME if nobody has that name")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_common(p, cmd_add_face)

    p = sub.add_parser(
        "review",
        aliases=["suggestions"],
        help='"Is this X?" with a confidence, "likely" or "unsure"; clusters that look like X',
    )
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_common(p, cmd_review)

    p = sub.add_parser("accept-likely", help='confirm every "likely" suggestion (one undo step)')
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_common(p, cmd_accept_likely)

    p = sub.add_parser("reject-cluster", help='"no" to "this cluster looks like PERSON"')
    p.add_argument("cluster", metavar="CLUSTER", help="c<ID>")
    p.add_argument("--from", dest="person", required=True, metavar="PERSON")
    add_common(p, cmd_reject_cluster)

    p = sub.add_parser("outliers", help="faces of a cluster that may not be the same person")
    p.add_argument("cluster", metavar="CLUSTER", help="c<ID>")
    add_common(p, cmd_outliers)

    p = sub.add_parser("photos", help="photos in which all the given people appear, by date")
    p.add_argument("--person", action="append", default=[], metavar="NAME")
    add_common(p, cmd_photos)

    p = sub.add_parser("problems", help="files the scans could not read, and why")
    add_common(p, cmd_problems)

    p = sub.add_parser("retry", help="read the problem files again (all, or the ones given)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="paths as `problems` lists them")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_common(p, cmd_retry)

    p = sub.add_parser("birthday", help="set or clear a person's birth date")
    p.add_argument("person", metavar="PERSON")
    p.add_argument("date", nargs="?", metavar="YYYY-MM-DD")
    p.add_argument("--clear", action="store_true")
    add_common(p, cmd_birthday)

    p = sub.add_parser("cover", help="make a face its person's picture")
    p.add_argument("face", type=int, metavar="FACE_ID")
    add_common(p, cmd_cover)


def _cluster(lib: Library, text: str) -> int:
    kind, ident = album.parse_group_ref(lib, text)
    if kind != "cluster":
        raise CLIError(f"{text!r} is a person, not a cluster (use c<ID>)", 2)
    return ident


def _out(args: argparse.Namespace, text: str, **extra: object) -> int:
    if args.json:
        print_json({"done": text, **extra})
    else:
        echo(text)
    return 0


def target_person(lib: Library, to: str, create: bool) -> int | None:
    """The person ``to`` names (p<ID> or a name); None: a new one is to be created."""
    try:
        kind, ident = album.parse_group_ref(lib, to)
    except album.PeopleError:
        if not create:
            raise CLIError(f"no person {to!r} (add --create to make a new person)", 1) from None
        return None
    if kind != "person":
        raise CLIError(f"{to!r} is a cluster; name it first (faceapp name {to} NAME)", 2)
    return ident


def name_faces(lib: Library, face_ids: list[int], to: str, create: bool) -> naming.NameResult:
    """Faces to ``to`` (p<ID> or a name); an unknown name needs ``create``."""
    person = target_person(lib, to, create)
    if person is None:
        return naming.move_to_name(lib, face_ids, to, create=True)
    return naming.move_to_person(lib, face_ids, person)


def result_json(r: naming.NameResult) -> dict:
    return {"person": r.person_id, "name": r.name, "created": r.created, "moved": r.moved}


def cmd_add_face(args: argparse.Namespace) -> int:
    from faceapp.engine import add_face, pipeline

    if args.create and not args.to:
        raise CLIError("--create needs --to NAME", 2)
    lib = open_for_edits(args)
    if args.to:
        target_person(lib, args.to, args.create)  # a wrong name fails before the face is added
    face_id = add_face.add_face(
        lib, pipeline.analyzer_for_library(lib, args.device), args.photo, args.box
    )
    extra: dict = {"face": face_id}
    text = f"Added face {face_id}"
    if args.to:
        r = name_faces(lib, [face_id], args.to, args.create)
        extra.update(result_json(r))
        text += f" as {r.name}" + (" (new person)" if r.created else "")
    return _out(args, text, **extra)


def measure_small_faces(lib: Library, device: str) -> None:
    """Small faces not yet compared at their own resolution are, before the queue is
    read (the network is loaded only when there are some; without it the queue keeps
    the plain distances, and a warning says why)."""
    from faceapp.engine import small_match

    todo = small_match.to_measure(lib)
    model = lib.active_model()
    if todo and model is not None:
        from faceapp.engine import pipeline

        try:
            embed = pipeline.analyzer_for_library(lib, device).embedder.embed
        except FaceAppError as exc:
            echo(f"faceapp: warning: small faces not measured: {exc}", file=sys.stderr)
            return
        small_match.update(lib, embed, model.id, todo=todo)


def cmd_review(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    measure_small_faces(lib, args.device)
    items = review.review(lib, limit=args.limit)
    clusters = review.cluster_reviews(lib)
    cal = review.calibrate(lib)
    if args.json:
        print_json(
            {
                "suggestions": [
                    {
                        "face": s.face_id,
                        "person": s.person_id,
                        "name": s.person_name,
                        "distance": s.distance,
                        "confidence": round(s.confidence, 4),
                        "label": s.label,
                    }
                    for s in items
                ],
                "clusters": [
                    {
                        "cluster": c.cluster_id,
                        "person": c.person_id,
                        "name": c.person_name,
                        "matching": c.matching,
                        "faces": c.count,
                        "confidence": round(c.confidence, 4),
                    }
                    for c in clusters
                ],
                "calibration": cal.source,
            }
        )
        return 0
    if not items and not clusters:
        echo("nothing to review")
    for s in items:
        echo(
            f"face {s.face_id:>7}  is {s.person_name}?  {s.label:<6}  "
            f"confidence {s.confidence:.2f}  distance {s.distance:.3f}"
        )
    for c in clusters:
        echo(
            f"{c.text}: merge? (faceapp name c{c.cluster_id} p{c.person_id};"
            f" no: faceapp reject-cluster c{c.cluster_id} --from p{c.person_id})"
        )
    return 0


def cmd_accept_likely(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    measure_small_faces(lib, args.device)
    changes = review.accept_likely(lib)
    if changes is None:
        return _out(args, "No likely suggestions", accepted=0)
    return _out(args, changes.description, accepted=len(changes.faces), faces=sorted(changes.faces))


def cmd_reject_cluster(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    cid = _cluster(lib, args.cluster)
    return _out(args, naming.reject_cluster(lib, cid, person_id(lib, args.person)).description)


def cmd_outliers(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    cid = _cluster(lib, args.cluster)
    faces = naming.cluster_outliers(lib, cid)
    if args.json:
        print_json({"cluster": cid, "outliers": faces})
    elif faces:
        echo(
            f"{people._plural(len(faces), 'face')} may not be the same person: "
            + " ".join(map(str, faces))
        )
    else:
        echo("every face fits the group")
    return 0


def cmd_photos(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    found = photos.photos_with(lib, [person_id(lib, n) for n in args.person])
    if args.json:
        print_json({"photos": [p.as_dict() for p in found]})
        return 0
    if not found:
        echo("no photos")
    for p in found:
        who = ", ".join(
            f.name + (f" ({f.age})" if f.age is not None else "") for f in p.faces if f.name
        )
        unnamed = sum(1 for f in p.faces if not f.name)
        who += f" + {unnamed} unnamed" if unnamed else ""  # not "Anna, ?, ?, ?"
        echo(f"{(p.taken_at or '')[:10]:<10}  {p.path}  {who}")
    return 0


def cmd_problems(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    found = photos.problems(lib)
    if args.json:
        print_json(
            {"problems": [{"path": p.path, "reason": p.reason, "when": p.when} for p in found]}
        )
        return 0
    if not found:
        echo("no problems")
    for p in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.when))
        echo(f"{when}  {p.path}: {p.reason}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from faceapp.engine import pipeline

    lib = open_for_edits(args)
    if lib.root is None:
        raise CLIError("this library has no photo folder", 1)
    analyzer = pipeline.analyzer_for_library(lib, args.device)
    report = pipeline.retry(lib, lib.root, analyzer, args.paths or None)
    still = [{"path": p, "reason": r} for p, r in report.errors]
    text = f"{report.photos} file(s) read now, {len(still)} still failing"
    if args.json:
        print_json({"read": report.photos, "faces": report.faces, "errors": still})
        return 0
    echo(text)
    for e in still:
        echo(f"  {e['path']}: {e['reason']}")
    return 0


def cmd_birthday(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    if args.clear == (args.date is not None):
        raise CLIError("give a date (YYYY-MM-DD) or --clear", 2)
    pid = person_id(lib, args.person)
    changes = birthdays.set_birth_date(lib, pid, None if args.clear else args.date)
    return _out(args, changes.description, person=pid, born=birthdays.birth_date(lib, pid))


def cmd_cover(args: argparse.Namespace) -> int:
    lib = open_for_edits(args)
    person = lib.face(args.face).person_id
    if person is None:
        raise CLIError(f"face {args.face} is not named yet: name it first", 1)
    return _out(args, photos.set_cover(lib, person, args.face).description, person=person)
