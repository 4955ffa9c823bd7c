"""Files left behind by a fine-tune that was killed while saving, removed on the next start.

Saving writes the weights file, then its JSON sidecar (each through a ``.tmp`` file
and a rename), and only then registers the version in the library. A kill in
between leaves a weights file no version points to (about 90 MB) or a ``.tmp``.
A weights file is only removed when it is certain to be nobody's: no row of this
library names it, and its sidecar names this library (or there is no sidecar and
the process that wrote it is gone or the file is old).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from faceapp import config
from faceapp.engine.files import process_temp_writer

if TYPE_CHECKING:
    from faceapp.engine.library import Library

MODELS_DIR = "models"
STALE_S = 3600.0  # a file this old was not written by a save still under way


def models_dir() -> Path:
    """Where fine-tuned weights files live (in the data directory)."""
    path = config.data_dir() / MODELS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _abandoned(path: Path, pid: int | None) -> bool:
    """Was ``path`` written by a process that is gone (or long ago)?"""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    if pid is not None and pid != os.getpid() and not pid_alive(pid):
        return True
    return age > STALE_S


def clean_finetune_orphans(lib: Library, folder: Path | None = None) -> list[Path]:
    """Remove interrupted saves' leftovers that belong to ``lib``; returns what was removed."""
    folder = folder or models_dir()
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    writers: dict[str, int] = {}  # weights file name -> pid of a save that left a .tmp
    for tmp in folder.glob(".*.tmp"):
        writer = process_temp_writer(tmp.name)  # (".X.json.123.tmp" -> "X.json", 123)
        pid = writer[1] if writer else None
        if writer is not None:
            writers[Path(writer[0]).with_suffix(".pt").name] = writer[1]
        if _abandoned(tmp, pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    registered = {Path(m.path).name for m in lib.models() if m.path}
    here = str(lib.path.expanduser().resolve())
    for weights in folder.glob("finetuned-*.pt"):
        if weights.name in registered:
            continue
        sidecar = weights.with_suffix(".json")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            meta = None
        if meta is None:
            orphan = _abandoned(weights, writers.get(weights.name))
        else:
            pid = meta.get("pid")
            orphan = meta.get("library") == here and _abandoned(
                weights, pid if isinstance(pid, int) else None
            )
        if orphan:
            weights.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            removed.append(weights)
    return removed
