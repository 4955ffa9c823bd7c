"""Where the app keeps its files, and which torch device it runs on.

Everything the app writes lives in the user data directory (never in the photo
folder): libraries, cached weights, backups. ``FACEAPP_DATA_DIR`` overrides the
location so tests and benchmarks stay isolated from a user's real data.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import platformdirs

from faceapp.errors import FaceAppError

APP_NAME = "FaceAlbum"


def data_dir() -> Path:
    """The per-user directory for libraries, weights and backups (created on demand)."""
    override = os.environ.get("FACEAPP_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_library_path(folder: Path) -> Path:
    """One library file per photo folder, keyed by the folder's absolute path."""
    folder = Path(folder).expanduser().resolve()
    key = hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.name) or "root"
    libs = data_dir() / "libraries"
    libs.mkdir(parents=True, exist_ok=True)
    return libs / f"{stem}-{key}.sqlite"


class DeviceError(FaceAppError, ValueError):
    """A device that cannot be used on this machine."""


def resolve_device(name: str = "auto") -> str:
    """Map ``auto|cpu|cuda`` to a torch device string; ``cuda`` without a GPU is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA device is available")
        return name
    raise DeviceError(f"unknown device {name!r} (expected auto, cpu or cuda)")
