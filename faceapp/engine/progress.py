"""Progress and cancel callbacks of the engine's long work (training, re-embedding).

The engine reports progress by calling ``progress(item)`` and polls ``cancel()``
between batches; the GUI turns these into Qt signals, the CLI into a status line
and Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """Raised inside the engine when the cancel callback asks to stop."""


@dataclass(frozen=True)
class VersionProgress:
    """Saving, embedding, calibrating, switching to or re-clustering for a model version."""

    stage: str  # "save", "embed", "calibrate", "switch", "cluster"
    done: int
    total: int
    elapsed: float
    eta: float | None


def emit(progress: Callable | None, item: object) -> None:
    if progress is not None:
        progress(item)


def check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled()
