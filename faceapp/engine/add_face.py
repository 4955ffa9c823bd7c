"""A face given by its box: one the detector missed (a profile, a tagged face in a crowd).

The crop is cut and embedded exactly like a detected face's, so the new face clusters,
verifies and trains like any other; :meth:`Library.add_face` stores it. It has no
landmarks (``[]``) and probability 1.0 (a person said it is a face).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceapp.engine.detect import FaceBox
from faceapp.engine.images import DecodedImage
from faceapp.engine.library import LibraryError, NewFace
from faceapp.engine.scan_analyze import crop_to_jpeg

if TYPE_CHECKING:
    from faceapp.engine.pipeline import Analyzer

MIN_SIDE = 8.0  # display px: a smaller box holds nothing to recognise


def face_from_box(analyzer: Analyzer, decoded: DecodedImage, box: Sequence[float]) -> NewFace:
    """The stored form of a face at ``box`` (display pixels), cropped and embedded."""
    x1, y1 = max(0.0, float(box[0])), max(0.0, float(box[1]))
    x2, y2 = min(float(decoded.width), float(box[2])), min(float(decoded.height), float(box[3]))
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        raise LibraryError(f"a face box must be at least {MIN_SIDE:.0f} pixels on each side")
    face = FaceBox((x1, y1, x2, y2), np.zeros((0, 2), np.float32), 1.0)
    crop = analyzer.detector.crops(decoded, [face])
    vector = analyzer.embedder.embed(crop)[0]
    return NewFace(
        box=face.box, landmarks=[], prob=1.0, crop_jpeg=crop_to_jpeg(crop[0]), embedding=vector
    )
