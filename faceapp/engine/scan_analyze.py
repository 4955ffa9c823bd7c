"""Scan stage 3, analyze: decoded photos -> faces, crops and embeddings.

The output, :class:`PhotoResult`, is plain data (no image, no model): it can be sent
from a worker process or another machine to the one library writer.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from faceapp.engine.images import DecodedImage
from faceapp.engine.library_photos import NewFace
from faceapp.engine.photo_dates import file_time
from faceapp.engine.scan_decode import Decoded


class FaceAnalyzer(Protocol):
    """What the analyze stage needs of pipeline.Analyzer."""

    def analyze(self, images: list[DecodedImage]) -> list[list]: ...


@dataclass
class PhotoResult:
    """One file ready for the store stage: its faces, or the reason it has none."""

    rel: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int = 0
    height: int = 0
    faces: list[NewFace] = field(default_factory=list)
    error: str | None = None
    taken_at: str | None = None  # EXIF date, else the file's time


def crop_to_jpeg(crop: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _float_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return float(x1), float(y1), float(x2), float(y2)


def _new_faces(analyzed: list) -> list[NewFace]:
    return [
        NewFace(
            box=_float_box(a.face.box),
            landmarks=np.asarray(a.face.landmarks, float).round(2).tolist(),
            prob=float(a.face.prob),
            crop_jpeg=crop_to_jpeg(a.crop),
            embedding=a.embedding,
        )
        for a in analyzed
    ]


def analyze_batch(analyzer: FaceAnalyzer, batch: list[Decoded]) -> list[PhotoResult]:
    """One result per decoded file, in order; a photo that breaks the networks costs
    only itself (the batch is retried one photo at a time)."""
    good = [b for b in batch if b.image is not None]
    images = [b.image for b in batch if b.image is not None]
    found: Sequence[list | str]
    try:
        found = analyzer.analyze(images) if good else []
    except Exception:  # isolate the photo that broke the batch
        found = [_analyze_one(analyzer, image) for image in images]
    by_rel = {id(b): f for b, f in zip(good, found, strict=True)}
    out = []
    for item in batch:
        result = PhotoResult(item.rel, item.size, item.mtime_ns, item.content_hash)
        faces = by_rel.get(id(item))
        if isinstance(faces, str):
            result.error = faces
        elif item.image is None or faces is None:  # faces is None only without an image
            result.error = item.error
        else:
            result.width, result.height = item.image.width, item.image.height
            result.taken_at = item.image.taken or file_time(item.mtime_ns)
            result.faces = _new_faces(faces)
        out.append(result)
    return out


def _analyze_one(analyzer: FaceAnalyzer, image: DecodedImage) -> list | str:
    try:
        return analyzer.analyze([image])[0]
    except Exception as exc:
        return f"face detection failed ({type(exc).__name__}: {exc})"
