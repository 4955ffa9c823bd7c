"""Verification: are two faces the same person?

FaceNet's rule: squared L2 distance between unit embeddings below a threshold.
The threshold belongs to the model version (calibrated on LFW pairsDevTrain for
the shipped weights, on held-out confirmed pairs after fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceapp.engine.image_open import ImageError
from faceapp.engine.images import DecodedImage, load_image
from faceapp.engine.pipeline import AnalyzedFace, Analyzer
from faceapp.engine.scan_decode import DECODE_TIME_LIMIT, TIME_LIMIT_REASON
from faceapp.engine.timelimit import TimeLimitExceeded, call_with_time_limit
from faceapp.engine.vecmath import squared_distance
from faceapp.errors import FaceAppError


class NoFaceError(FaceAppError):
    """A photo in which no face was found."""

    exit_code = 3


def pairwise_squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All squared distances between the rows of two unit-vector matrices."""
    return np.clip(2.0 - 2.0 * (a @ b.T), 0.0, 4.0)


def largest_face(faces: list[AnalyzedFace]) -> int:
    """Index of the face with the largest box: the default subject of a photo."""
    areas = [(f.face.box[2] - f.face.box[0]) * (f.face.box[3] - f.face.box[1]) for f in faces]
    return int(np.argmax(areas))


@dataclass(frozen=True)
class Verdict:
    same: bool
    distance: float
    threshold: float
    threshold_source: str


def compare(a: AnalyzedFace, b: AnalyzedFace, analyzer: Analyzer) -> Verdict:
    d = squared_distance(a.embedding, b.embedding)
    return Verdict(d < analyzer.threshold, d, analyzer.threshold, analyzer.threshold_source)


@dataclass(frozen=True)
class PhotoVerdict:
    verdict: Verdict
    faces: tuple[int, int]  # faces found in each photo
    chosen: tuple[int, int]  # which face of each photo was compared


def verify_photos(
    analyzer: Analyzer,
    path_a: Path,
    path_b: Path,
    *,
    face_a: int | None = None,
    face_b: int | None = None,
) -> PhotoVerdict:
    """Compare one face of each photo (the largest unless chosen).

    Errors name the photo they are about ("first photo x.jpg: ..."). Each photo is
    read under the scan's per-file time limit, so a stalled share cannot hang it.
    """
    found = []
    for which, path in (("first photo", Path(path_a)), ("second photo", Path(path_b))):
        faces = analyzer.analyze([_decode(path, which)])[0]
        if not faces:
            raise NoFaceError(f"no face found in the {which} ({path})")
        found.append(faces)
    ia = largest_face(found[0]) if face_a is None else face_a
    ib = largest_face(found[1]) if face_b is None else face_b
    verdict = compare(found[0][ia], found[1][ib], analyzer)
    return PhotoVerdict(verdict, (len(found[0]), len(found[1])), (ia, ib))


def _decode(path: Path, which: str) -> DecodedImage:
    try:
        return call_with_time_limit(load_image, path, limit=DECODE_TIME_LIMIT, name="verify")
    except TimeLimitExceeded:
        reason = TIME_LIMIT_REASON.format(DECODE_TIME_LIMIT)
    except ImageError as exc:
        reason = str(exc)
    raise ImageError(f"{which} {path}: {reason}")
