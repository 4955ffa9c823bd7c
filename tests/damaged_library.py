"""A library with labelled faces to damage, and ways to damage it (page overwrites).

Shared by tests/engine/test_check.py and tests/gui/test_restore.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from fake_scan import new_library

from faceapp.engine import people
from faceapp.engine.library import Library
from faceapp.engine.library_photos import NewFace


def built_library(path: Path, photos: int = 150) -> Library:
    """Photos with one face each (3 KB crops: overflow pages, as real crops make), two
    named people."""
    lib = new_library(path, path.parent)
    rng = np.random.default_rng(0)
    model = lib.active_model().id
    for i in range(photos):
        v = rng.standard_normal(512).astype(np.float32)
        lib.store_photo(
            f"p{i:04d}.jpg",
            size=i + 1,
            mtime_ns=i,
            width=100,
            height=100,
            content_hash=f"h{i}",
            faces=[NewFace((1, 1, 50, 50), [[1, 1]] * 5, 0.9, rng.bytes(3000), v / 9)],
            model_id=model,
        )
    ids = [f.id for f in lib.faces()]
    people.create_person(lib, "Anna", ids[:20])
    if len(ids) > 20:
        people.create_person(lib, "Bob", ids[20:30])
    return lib


def labels_in(path: Path) -> dict[int, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(
            conn.execute("SELECT f.id, p.name FROM faces f JOIN people p ON p.id = f.person_id")
        )
    finally:
        conn.close()


def overwrite_page(path: Path, page: int, seed: int = 1) -> None:
    """Replace one 4 KiB page (1-based; negative counts from the end) with random bytes."""
    pages = path.stat().st_size // 4096
    index = page if page > 0 else pages + 1 + page
    with open(path, "r+b") as f:
        f.seek((index - 1) * 4096)
        f.write(np.random.default_rng(seed).bytes(4096))
