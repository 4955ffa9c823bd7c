"""Which files in a folder tree are photos.

:func:`discover` walks a folder tree and returns the photo files in a stable order.
It skips hidden folders and files (``.thumbnails``, ``.git``, macOS ``._*`` resource
forks), NAS/OS thumbnail junk folders, and the app's own files; it follows folder
symlinks but never loops.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from faceapp.engine.image_open import os_reason

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"}
)
# The app's own files (SQLite library + journals) never count as photos, even if
# someone names a library "x.jpg.sqlite" or keeps one inside the photo folder.
APP_FILE_SUFFIXES: tuple[str, ...] = (".sqlite", "-wal", "-shm", "-journal")
# Folders that only hold copies/thumbnails made by a NAS or an OS; scanning them
# would duplicate every face.
JUNK_DIRS: frozenset[str] = frozenset({"@eadir", "__macosx", "$recycle.bin"})


def is_image_path(path: Path) -> bool:
    """True for a visible, non-app file with a photo extension (any letter case)."""
    name = path.name
    if name.startswith("."):
        return False
    lower = name.lower()
    if lower.endswith(APP_FILE_SUFFIXES):
        return False
    return os.path.splitext(lower)[1] in IMAGE_EXTENSIONS


def discover(
    root: Path,
    on_error: Callable[[Path, str], None] | None = None,
) -> list[Path]:
    """All photo files under ``root``, recursively, sorted; paths start with ``root``.

    Hidden entries and junk folders are skipped. Folder symlinks are followed
    (people link albums in from other disks), but each real folder is walked
    once, where it is first reached in name order, so a link to a parent
    cannot loop. Unreadable folders and photo links whose target is gone are
    skipped and reported to ``on_error(path, reason)`` when given: one locked
    folder must not stop a scan of the rest.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    found: list[Path] = []
    seen: set[str] = set()
    stack: list[Path] = [root]
    while stack:
        folder = stack.pop()
        try:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if on_error is not None:
                on_error(folder, os_reason(exc, "cannot read folder"))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = folder / name
            try:
                if entry.is_dir(follow_symlinks=True):
                    if name.lower() not in JUNK_DIRS:
                        subfolders.append(path)
                elif entry.is_file(follow_symlinks=True) and is_image_path(path):
                    found.append(path)
                elif on_error and entry.is_symlink() and is_image_path(path) and not path.exists():
                    on_error(path, f"broken link: {os.readlink(path)} does not exist")
            except OSError as exc:  # e.g. a symlink to a folder we may not stat
                if on_error is not None:
                    on_error(path, os_reason(exc, "cannot read"))
        # Depth-first in name order, so which link "owns" a folder reachable twice
        # does not depend on the file system's listing order.
        stack.extend(reversed(subfolders))
    found.sort()
    return found
