"""Commands of the engine: scan, faces, verify, eval-lfw, weights."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from faceapp.cli import CLIError, add_json_option, add_library_option, echo, print_json
from faceapp.cli.terminal import safe

if TYPE_CHECKING:  # the engine modules import torch: loaded by the commands that run them
    from faceapp.engine import pipeline
    from faceapp.engine.face_tags import TagImport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="find and embed the faces of a photo folder")
    p.add_argument("folder", type=Path)
    _model_options(p)
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="decode, detect and embed on a Ray cluster (auto, HOST:PORT, ray://HOST:10001);"
        " the workers must see the folder at the same path",
    )
    p.add_argument(
        "--ray-time-limit",
        metavar="SECONDS",
        type=float,
        default=None,
        help="with --ray: give a worker's share up after this long without progress and send"
        " it elsewhere (default 300; longer when photos take long)",
    )
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_scan)

    p = sub.add_parser("faces", help="list the faces of a library")
    p.add_argument(
        "--csv", action="store_true", help="CSV: face, photo, box, person, cluster, date taken"
    )
    add_library_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_faces)

    p = sub.add_parser("verify", help="are the people in two photos the same person?")
    p.add_argument("image_a", type=Path)
    p.add_argument("image_b", type=Path)
    _model_options(p)
    p.add_argument(
        "--library",
        type=Path,
        default=None,
        help="judge with this library's active model version and threshold (as the GUI does)",
    )
    add_json_option(p)
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("eval-lfw", help="LFW 10-fold verification accuracy of the pipeline")
    p.add_argument("--root", type=Path, required=True, help="folder of <Name>/<Name>_NNNN.jpg")
    p.add_argument("--pairs", type=Path, required=True, help="pairs.txt")
    _model_options(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_eval_lfw)

    p = sub.add_parser("weights", help="which embedder weights are in use")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--weights", type=Path, default=None, help="a weights file to check")
    what.add_argument(
        "--download",
        action="store_true",
        help="download facenet-pytorch's VGGFace2 weights (the only network use; offline"
        " the app uses the CASIA-WebFace weights it ships)",
    )
    add_json_option(p)
    p.set_defaults(handler=cmd_weights)


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--weights", type=Path, default=None, help="embedder weights file (.pt)")


def _terminal_progress(p: pipeline.ScanProgress) -> None:
    eta = f"{p.eta:4.0f}s" if p.eta is not None else "   ?"
    line = f"\r{p.done}/{p.total} photos  {p.faces} faces  ETA {eta}  {safe(p.current)[-40:]:<40}"
    print(line, end="", file=sys.stderr, flush=True)


def cmd_scan(args: argparse.Namespace) -> int:
    _checked(args.weights)
    from faceapp.engine import cluster, library, model_versions, pipeline

    folder = args.folder.expanduser()
    if not folder.is_dir():
        raise CLIError(f"{folder} is not a folder", 2)
    if args.ray_time_limit is not None and (not args.ray or args.ray_time_limit <= 0):
        raise CLIError("--ray-time-limit takes a number of seconds above 0, with --ray", 2)
    lib = library.open_library(folder, args.library)
    show = _terminal_progress if sys.stderr.isatty() else None
    if args.ray:
        from faceapp.engine import distributed

        loaded = model_versions.active_weights(lib, args.weights)
        limit = {"time_floor": args.ray_time_limit} if args.ray_time_limit else {}
        report = distributed.scan(lib, folder, loaded, args.ray, progress=show, **limit)
    else:
        analyzer = pipeline.analyzer_for_library(lib, args.device, args.weights)
        report = pipeline.scan(lib, folder, analyzer, progress=show)
    if show:
        print(file=sys.stderr)
    placed = cluster.place_if_large(lib)  # a large grouped library: new faces join groups
    if args.json:
        extra = {"placed": dataclasses.asdict(placed)} if placed else {}
        print_json(report.as_dict() | {"library": str(lib.path)} | extra)
    else:
        echo(
            f"{report.photos} photos scanned, {report.faces} faces, "
            f"{report.skipped_unchanged} unchanged, {len(report.errors)} errors "
            f"in {report.seconds:.1f} s  (library: {lib.path})"
        )
        for path, reason in report.errors:
            echo(f"  {path}: {reason}")
        if placed:
            echo(
                f"{placed.placed} new faces joined groups, {placed.suggested} wait as"
                f" suggestions, {placed.unknown} unsorted (`faceapp cluster` regroups all)"
            )
        _print_tags(report.tags)
    return 0


def _print_tags(tags: TagImport) -> None:
    if tags.photos:
        print(
            f"face tags in {tags.photos} photos: {tags.confirmed} faces confirmed,"
            f" {tags.added} added from tagged boxes, {tags.unplaced} names without a face,"
            f" {tags.conflicts} conflicts with your labels"
            + (" (faceapp tag-conflicts)" if tags.conflicts else "")
        )
    for path, reason in tags.errors:
        echo(f"  {path}: {reason}")


def cmd_faces(args: argparse.Namespace) -> int:
    from faceapp.engine import export, library

    lib = library.open_library(None, args.library)
    if args.csv:
        export.write_faces_csv(lib, sys.stdout)
        return 0
    faces = [
        {
            "id": f.id,
            "photo": f.photo_path,
            "box": [round(v, 1) for v in f.box],
            "prob": round(f.prob, 4),
            "cluster": f.cluster_id,
            "person": f.person_id,
        }
        for f in lib.faces()
    ]
    if args.json:
        print_json({"faces": faces})
    else:
        for f in faces:
            echo(f"{f['id']:>7}  {f['photo']}  {f['box']}  p={f['prob']:.3f}")
    return 0


def _checked(path: Path | None) -> Path | None:
    """A weights file the user named, refused if hostile before torch is imported."""
    if path is not None:
        from faceapp.engine.weights_file import check_file

        check_file(path.expanduser())
    return path


def _analyzer(args: argparse.Namespace) -> pipeline.Analyzer:
    from faceapp.engine import pipeline, weights

    return pipeline.Analyzer.from_weights(weights.resolve_weights(args.weights), args.device)


def cmd_verify(args: argparse.Namespace) -> int:
    _checked(args.weights)
    from faceapp.engine import library, pipeline, verify

    if args.library is not None:
        lib = library.open_library(None, args.library)
        analyzer = pipeline.analyzer_for_library(lib, args.device, args.weights)
    else:
        analyzer = _analyzer(args)
    try:
        result = verify.verify_photos(analyzer, args.image_a, args.image_b)
    except verify.NoFaceError as exc:
        raise CLIError(str(exc), 3) from exc
    v = result.verdict
    notes = [
        f"{path} has {n} faces; compared the largest"
        for path, n in zip((args.image_a, args.image_b), result.faces, strict=True)
        if n > 1
    ]
    if args.json:
        print_json(
            {
                "same": v.same,
                "distance": round(v.distance, 4),
                "threshold": round(v.threshold, 4),
                "threshold_source": v.threshold_source,
                "faces": list(result.faces),
                "notes": notes,
            }
        )
    else:
        for note in notes:
            echo(note, file=sys.stderr)
        verdict = "same person" if v.same else "different people"
        print(f"{verdict}: distance {v.distance:.3f} (threshold {v.threshold:.3f})")
    return 0


def cmd_eval_lfw(args: argparse.Namespace) -> int:
    _checked(args.weights)
    from faceapp.engine import lfw

    if not args.pairs.is_file() or not args.root.is_dir():
        raise CLIError("--root must be a folder and --pairs a pairs file", 2)
    analyzer = _analyzer(args)
    result = lfw.evaluate_pairs(analyzer, args.root, args.pairs)
    out = result.report.as_dict() | {"no_face": result.no_face}
    if args.json:
        print_json(out)
    else:
        for key, value in out.items():
            print(f"{key:>16}: {value}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    _checked(args.weights)
    from faceapp.engine import weights as weights_mod

    if args.download:
        loaded = weights_mod.vggface2_weights() or weights_mod.download_vggface2()
    else:
        loaded = weights_mod.resolve_weights(args.weights)
    info = weights_mod.describe(loaded)
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            echo(f"{key:>16}: {value}")
    return 0
