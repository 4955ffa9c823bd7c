"""Model versions from the command line: list, use (switch and re-cluster), remove.

The same engine calls as the GUI's Models page (:mod:`faceapp.engine.model_versions`).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from faceapp.cli import CLIError, add_json_option, add_library_option, echo, print_json
from faceapp.engine import library

if TYPE_CHECKING:  # loaded by the command when it runs
    from faceapp.engine.progress import VersionProgress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model versions; `models use N` switches")
    add_library_option(p)
    add_json_option(p)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    u = msub.add_parser(
        "use", help="make a version active (embeds faces it lacks) and re-group the faces"
    )
    u.add_argument("version", type=int)
    u.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r = msub.add_parser("remove", help="delete an inactive version and its weights file")
    r.add_argument("version", type=int)
    for action in (u, r):  # also accepted after the action; SUPPRESS keeps the parent's value
        action.add_argument("--library", type=Path, default=argparse.SUPPRESS)
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_models)


@contextlib.contextmanager
def interruptible() -> Iterator[threading.Event]:
    """Ctrl-C asks the engine to stop cleanly (cancel callback) instead of killing it."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping... (Ctrl-C again to abort at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def progress_line(p: VersionProgress) -> None:
    eta = f"{p.eta:5.0f}s" if p.eta is not None else "    ?"
    what = "faces" if p.stage == "embed" else "steps"
    print(f"\r{p.stage}: {p.done}/{p.total} {what}  ETA {eta:<30}", end="", file=sys.stderr)


def cmd_models(args: argparse.Namespace) -> int:
    from faceapp.engine import model_versions as mv
    from faceapp.engine.cluster import ClusterParams

    lib = library.open_library(None, args.library)
    action = getattr(args, "models_command", None)
    try:
        if action == "use":
            with interruptible() as stop:
                show = progress_line if sys.stderr.isatty() else None
                done = mv.activate(
                    lib,
                    args.version,
                    params=ClusterParams(),
                    progress=show,
                    cancel=stop.is_set,
                    device=args.device,
                )
                if show:
                    print(file=sys.stderr)
            if not done.activated:
                raise CLIError("interrupted: the active model was not changed", 130)
            if not args.json and done.clusters is not None:
                print(
                    f"now using model version {args.version}; faces regrouped:"
                    f" {done.clusters.clusters} clusters, {done.clusters.unknown} unsorted"
                )
        elif action == "remove":
            mv.remove_version(lib, args.version)
    except mv.ModelError as exc:
        raise CLIError(str(exc), 1) from exc
    listed = mv.versions(lib)
    if args.json:
        print_json({"models": [v.as_dict() for v in listed]})
        return 0
    for v in listed:
        mark = "*" if v.active else " "
        state = v.status if v.status == "ready" else f"{v.status} (incomplete)"
        extra = ""
        after, before = v.metadata.get("after"), v.metadata.get("before")
        if after and before:
            extra = f"  held-out VAL {before['val']:.3f} -> {after['val']:.3f}"
        echo(
            f"{mark} {v.id:>3}  {v.name:<44} {state:<8} threshold {v.threshold:.3f}"
            f"  faces {v.embedded_faces}/{v.total_faces}{extra}"
        )
    return 0
