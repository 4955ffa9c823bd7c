"""The fine-tuning command: train on the confirmed people, accept as a new model version."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from faceapp.cli import CLIError, add_json_option, add_library_option, echo, print_json
from faceapp.cli.models import interruptible, progress_line
from faceapp.engine import finetune_plan, library
from faceapp.engine.finetune_plan import MINING, TRAINABLE

if TYPE_CHECKING:  # imports torch: loaded when the command runs
    from faceapp.engine import finetune as ft


def register(sub: argparse._SubParsersAction) -> None:
    defaults = finetune_plan.FinetuneOptions()
    p = sub.add_parser(
        "finetune",
        help="fine-tune the embedder on the confirmed people (triplet loss)",
        description=(
            "Train the last layers of the embedder on the faces you confirmed, measure it on"
            " held-out confirmed faces, and if it is better make it a new model version"
            " (every face is re-embedded; the old version stays available)."
        ),
    )
    add_library_option(p)
    add_json_option(p)
    p.add_argument("--epochs", type=int, default=None, help=f"at most (default {defaults.epochs})")
    p.add_argument("--mining", choices=list(MINING), default=None)
    p.add_argument("--trainable", choices=list(TRAINABLE), default=None)
    p.add_argument("--lr", type=float, default=None, help=f"learning rate ({defaults.lr:g})")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    what = p.add_mutually_exclusive_group()
    what.add_argument("--plan", action="store_true", help="only show what would be trained on")
    what.add_argument(
        "--no-accept", action="store_true", help="train and report, but keep the current model"
    )
    what.add_argument(
        "--force", action="store_true", help="accept the new model even if it is not better"
    )
    p.set_defaults(handler=cmd_finetune)


def _train_line(p: ft.TrainProgress) -> None:
    eta = f"{p.eta:5.0f}s" if p.eta is not None else "    ?"
    if p.stage == "prepare":
        line = f"\rpreparing {p.step}/{p.steps} crops  ETA {eta}"
    else:
        loss = f"{p.loss:.4f}" if p.loss is not None else "  -   "
        val = f"{p.heldout.val:.3f}" if p.heldout is not None else "  -  "
        line = (
            f"\repoch {p.epoch}/{p.epochs} step {p.step}/{p.steps}  loss {loss}"
            f"  held-out VAL {val}  ETA {eta}"
        )
    print(f"{line:<78}", end="", file=sys.stderr, flush=True)


def _metrics_text(m: ft.HeldoutMetrics | None) -> str:
    if m is None:
        return "not measurable (too few held-out faces)"
    return (
        f"VAL@FAR={m.far_target:g} {m.val:.3f} (miss {m.miss:.3f}), accuracy {m.accuracy:.3f},"
        f" {m.same_pairs} same / {m.diff_pairs} different pairs"
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    from faceapp.engine import finetune as ft
    from faceapp.engine.cluster import ClusterParams

    lib = library.open_library(None, args.library)
    try:
        options = finetune_plan.options_from(
            epochs=args.epochs,
            mining=args.mining,
            trainable=args.trainable,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
        )
        the_plan = ft.plan(lib, options)
    except ft.FinetuneError as exc:
        raise CLIError(str(exc), 2) from exc
    if args.plan or not the_plan.can_train:
        out = the_plan.as_dict() | {
            "people_detail": [
                {"id": p.person_id, "name": p.name, "train": p.train, "heldout": p.heldout}
                for p in the_plan.people
            ]
        }
        if args.json:
            print_json(out)
        else:
            print(
                f"{len(the_plan.people)} people, {the_plan.train_faces} training faces,"
                f" {the_plan.heldout_faces} held out ({the_plan.skipped_people} people with"
                " a single confirmed face skipped)"
            )
            for w in the_plan.warnings:
                echo(f"note: {w}")
        if not the_plan.can_train:
            raise CLIError(the_plan.reason or "nothing to train on", 2)
        return 0
    show_train = _train_line if sys.stderr.isatty() else None
    show_accept = progress_line if sys.stderr.isatty() else None
    with interruptible() as stop:
        try:
            result = ft.train(
                lib, options, progress=show_train, cancel=stop.is_set, the_plan=the_plan
            )
        except ft.FinetuneError as exc:
            raise CLIError(str(exc), 1) from exc
        if show_train:
            print(file=sys.stderr)
        accepted, report, why = False, None, None
        if stop.is_set():
            why = "interrupted: the current model was kept"
        elif args.no_accept:
            why = "--no-accept: the current model was kept"
        elif not (result.improved or args.force):
            why = "not better on the held-out faces: the current model was kept (--force to use it)"
        else:
            try:
                report = ft.accept(
                    lib,
                    result,
                    progress=show_accept,
                    cancel=stop.is_set,
                    device=args.device,
                    params=ClusterParams(),
                )
            except ft.FinetuneError as exc:
                raise CLIError(str(exc), 1) from exc
            if show_accept:
                print(file=sys.stderr)
            accepted = not report.cancelled
            if report.cancelled:
                why = "interrupted while re-embedding: the current model was kept"
        if not accepted:
            ft.discard(result)
    seconds = result.seconds + (report.seconds if report else 0.0)
    out = {
        "before": result.before.as_dict() if result.before else None,
        "after": result.after.as_dict() if result.after else None,
        "improved": result.improved,
        "accepted": accepted,
        "model_version": report.model_id if accepted and report else None,
        "seconds": round(seconds, 2),
        "train_seconds": round(result.seconds, 2),
        "reembed_seconds": round(report.seconds, 2) if report else None,
        "threshold": round(report.threshold, 4) if accepted and report else None,
        "threshold_source": report.threshold_source if accepted and report else None,
        "clusters": report.clusters.clusters if accepted and report and report.clusters else None,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "plan": result.plan,
        "note": why,
    }
    if args.json:
        print_json(out)
    else:
        print(f"before: {_metrics_text(result.before)}")
        print(f"after:  {_metrics_text(result.after)}")
        print(
            f"{len(result.history)} epochs (best {result.best_epoch}, {result.stopped}),"
            f" {result.seconds:.0f} s training"
        )
        if accepted and report:
            print(
                f"now using model version {report.model_id} (threshold {report.threshold:.3f};"
                f" {report.faces_embedded} faces re-embedded in {report.seconds:.0f} s)"
            )
            if report.clusters is not None:
                print(
                    f"faces regrouped: {report.clusters.clusters} clusters,"
                    f" {report.clusters.unknown} unsorted"
                )
        else:
            print(why)
    return 130 if stop.is_set() else 0
