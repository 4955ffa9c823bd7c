"""A small real library of synthetic faces: a registered model, one face per photo.

For tests of the commands that need no network (tests/cli) and for
bench/cli_startup.py, which times them on such a library.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from faceapp.engine.library import Library
from faceapp.engine.library_photos import NewFace


def small_library(path: Path, vectors: np.ndarray, photos: Sequence[str] = ()) -> Library:
    """A new library file at ``path`` with an active base model and one photo per row of
    ``vectors`` (unit embeddings), each with one face; photo ``i`` is named ``photos[i]``
    where given, else ``face{i}.jpg``. The caller closes it."""
    buf = io.BytesIO()
    Image.new("RGB", (160, 160), "gray").save(buf, format="JPEG")
    lib = Library(path, root=path.parent)
    model = lib.add_model(
        name="test",
        source="casia-webface",
        origin="test",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=1.1,
        threshold_source="test",
    )
    lib.set_active_model(model)
    for i, vector in enumerate(np.asarray(vectors, np.float32)):
        lib.store_photo(
            photos[i] if i < len(photos) else f"face{i}.jpg",
            size=1,
            mtime_ns=1,
            width=160,
            height=160,
            content_hash=str(i),
            model_id=model,
            faces=[
                NewFace(
                    box=(1.0, 1.0, 100.0, 100.0),
                    landmarks=[[0.0, 0.0]] * 5,
                    prob=0.99,
                    crop_jpeg=buf.getvalue(),
                    embedding=vector,
                )
            ],
        )
    return lib
