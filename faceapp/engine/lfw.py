"""LFW evaluation with the app's own pipeline (detection, crop, embedding).

Each LFW image is centred on its subject, so the face nearest the image centre is
the one the pair refers to. An image where the detector finds nothing falls back
to a fixed central box (counted in ``no_face``) rather than dropping the pair,
which would flatter the accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceapp.engine import metrics
from faceapp.engine.detect import FaceBox
from faceapp.engine.images import load_image
from faceapp.engine.pipeline import Analyzer

BATCH = 32
CENTRE_BOX_FRACTION = 0.4  # of the image side, for images where no face is found


@dataclass(frozen=True)
class LfwResult:
    report: metrics.VerificationReport
    no_face: int
    distances: np.ndarray
    same: np.ndarray


def central_face(faces: Sequence[FaceBox], width: int, height: int) -> int | None:
    """Index of the face whose box centre is nearest the image centre."""
    if not faces:
        return None
    cx, cy = width / 2, height / 2
    dist = [
        ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2 for f in faces
    ]
    return int(np.argmin(dist))


def centre_box(width: int, height: int) -> FaceBox:
    half = CENTRE_BOX_FRACTION * min(width, height) / 2
    cx, cy = width / 2, height / 2
    return FaceBox(
        box=(cx - half, cy - half, cx + half, cy + half),
        landmarks=np.zeros((5, 2), np.float32),
        prob=0.0,
    )


def _central_crop_batches(
    analyzer: Analyzer, paths: Sequence[Path]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, uint8 crops, no-face mask) of the central face, a batch of images at a time."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode") as pool:
        for start in range(0, len(paths), BATCH):
            chunk = list(pool.map(load_image, paths[start : start + BATCH]))
            boxes = analyzer.detector.detect(chunk)
            crops, no_face = [], []
            for img, faces in zip(chunk, boxes, strict=True):
                pick = central_face(faces, img.width, img.height)
                face = centre_box(img.width, img.height) if pick is None else faces[pick]
                no_face.append(pick is None)
                crops.append(analyzer.detector.crops(img, [face])[0])
            yield start, np.stack(crops), np.array(no_face, bool)


def central_crops(analyzer: Analyzer, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 160, 160, 3) uint8 crops of the central face of each image, and a no-face mask."""
    batches = list(_central_crop_batches(analyzer, paths))
    if not batches:
        return np.zeros((0, 160, 160, 3), np.uint8), np.zeros(0, bool)
    return np.concatenate([b[1] for b in batches]), np.concatenate([b[2] for b in batches])


def embed_central_faces(
    analyzer: Analyzer,
    paths: Sequence[Path],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 512) embeddings of the central face of each image, and a no-face mask."""
    vectors = np.zeros((len(paths), 512), np.float32)
    no_face = np.zeros(len(paths), bool)
    for start, crops, missing in _central_crop_batches(analyzer, paths):
        vectors[start : start + len(crops)] = analyzer.embedder.embed(crops)
        no_face[start : start + len(crops)] = missing
        if progress:
            progress(start + len(crops), len(paths))
    return vectors, no_face


def evaluate_pairs(
    analyzer: Analyzer,
    root: Path,
    pairs_file: Path,
    progress: Callable[[int, int], None] | None = None,
) -> LfwResult:
    """The standard LFW protocol on ``pairs_file`` with squared L2 distances."""
    pairs = metrics.read_pairs(pairs_file)
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    index = {name: i for i, name in enumerate(names)}
    vectors, no_face = embed_central_faces(analyzer, [Path(root) / n for n in names], progress)
    a = vectors[[index[p.a] for p in pairs]]
    b = vectors[[index[p.b] for p in pairs]]
    distances = np.sum((a - b) ** 2, axis=1)
    same = np.array([p.same for p in pairs])
    return LfwResult(metrics.evaluate(distances, same), int(no_face.sum()), distances, same)
