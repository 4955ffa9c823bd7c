"""Faces the detector missed: the user draws a box, the app treats it as a detected face.

The box is cropped and embedded by the same code as a scan (``Detector.crops`` and
the library's embedder), stored with ``manual = 1`` and a probability of 1, and from
then on it is a face like any other: it clusters, gets suggestions and names. A
rescan of a changed photo keeps it (see ``Library.store_photo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceapp.engine.detect import FaceBox
from faceapp.engine.images import DecodedImage, load_image
from faceapp.engine.library import Library, LibraryError, NewFace, _iou
from faceapp.engine.pipeline import Analyzer
from faceapp.engine.scan_analyze import crop_to_jpeg

MIN_SIDE = 12  # display px: anything smaller carries no identity for the embedder


class AddFaceError(LibraryError):
    """A box that cannot become a face (outside the photo, too small, already a face)."""


def photo_id_for(lib: Library, photo_path: Path | str) -> int:
    """The stored photo at ``photo_path`` (absolute, or relative to the library root)."""
    path = Path(photo_path).expanduser()
    rel = path.as_posix()
    root = lib.root
    if path.is_absolute():
        if root is None:
            raise AddFaceError("this library has no photo folder yet: scan one first")
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            raise AddFaceError(f"{path} is not in the library's folder {root}") from None
    row = lib.conn.execute(
        "SELECT id FROM photos WHERE path = ? AND status = 'ok'", (rel,)
    ).fetchone()
    if row is None:
        raise AddFaceError(f"{rel} is not a scanned photo of this library (scan it first)")
    return int(row[0])


def face_from_box(analyzer: Analyzer, decoded: DecodedImage, box: Sequence[float]) -> NewFace:
    """A face the detector missed, cropped and embedded exactly like a detected one.

    ``box`` is x1, y1, x2, y2 in display pixels (after EXIF rotation, as every stored
    box), clipped to the photo. It has no landmarks and probability 1 (a person said
    it is a face), and is marked manual so rescans keep it.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    x2, y2 = min(x2, float(decoded.width)), min(y2, float(decoded.height))
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        raise AddFaceError(
            f"the box must lie in the photo ({decoded.width} x {decoded.height} px) and be"
            f" at least {MIN_SIDE} px on each side"
        )
    face = FaceBox((x1, y1, x2, y2), np.zeros((5, 2), np.float32), 1.0)
    crop = analyzer.detector.crops(decoded, [face])
    vector = analyzer.embedder.embed(crop)[0]
    return NewFace(face.box, [], 1.0, crop_to_jpeg(crop[0]), vector, manual=True)


def add_face(lib: Library, analyzer: Analyzer, photo_path: Path | str, box: Sequence[float]) -> int:
    """Add a face drawn by the user; ``box`` is x1, y1, x2, y2 in display pixels (after
    EXIF rotation, as every stored box). Returns the new face id."""
    photo_id = photo_id_for(lib, photo_path)
    model = lib.active_model()
    if model is None:
        raise AddFaceError("the library has no active model yet: scan a folder first")
    root = lib.root
    decoded = load_image(Path(root) / lib.photo_path(photo_id) if root else Path(photo_path))
    face = face_from_box(analyzer, decoded, box)
    for other in lib.faces_of_photo(photo_id):
        if _iou(other.box, face.box) > 0.5:
            raise AddFaceError(f"that face is already there (face {other.id})")
    return lib.add_face(photo_id, face, model.id)
