"""Faces the detector missed: the user draws a box, the app treats it as a detected face.

The box is cropped and embedded by the same code as a scan and a face tag
(:func:`face_tags.face_from_box`: ``Detector.crops`` and the library's embedder),
stored with ``manual = 1`` and a probability of 1, and from then on it is a face like
any other: it clusters, gets suggestions and names. A rescan of a changed photo keeps
it (see ``Library.store_photo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from faceapp.engine.boxes import iou
from faceapp.engine.face_tags import face_from_box
from faceapp.engine.images import load_image
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.pipeline import Analyzer


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


def add_face(lib: Library, analyzer: Analyzer, photo_path: Path | str, box: Sequence[float]) -> int:
    """Add a face drawn by the user; ``box`` is x1, y1, x2, y2 in display pixels (after
    EXIF rotation, as every stored box). Returns the new face id."""
    photo_id = photo_id_for(lib, photo_path)
    model = lib.active_model()
    if model is None:
        raise AddFaceError("the library has no active model yet: scan a folder first")
    x1, x2 = sorted(float(v) for v in (box[0], box[2]))
    y1, y2 = sorted(float(v) for v in (box[1], box[3]))
    for other in lib.faces_of_photo(photo_id):
        if iou(other.box, (x1, y1, x2, y2)) > 0.5:
            raise AddFaceError(
                "that face is already marked on this photo: click its box to name it"
            )
    decoded = load_image(Path(lib.root or "") / lib.photo_path(photo_id))
    return lib.add_face(photo_id, face_from_box(analyzer, decoded, (x1, y1, x2, y2)), model.id)
