"""LFW evaluation with the app's own pipeline (detection, crop, embedding).

Each LFW image is centred on its subject, so the face nearest the image centre is
the one the pair refers to. An image where the detector finds nothing falls back
to a fixed central box (counted in ``no_face``) rather than dropping the pair,
which would flatter the accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def embed_central_faces(
    analyzer: Analyzer,
    paths: Sequence[Path],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 512) embeddings of the central face of each image, and a no-face mask."""
    vectors = np.zeros((len(paths), 512), np.float32)
    no_face = np.zeros(len(paths), bool)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode") as pool:
        for start in range(0, len(paths), BATCH):
            chunk = list(pool.map(load_image, paths[start : start + BATCH]))
            boxes = analyzer.detector.detect(chunk)
            crops = []
            for i, (img, faces) in enumerate(zip(chunk, boxes, strict=True)):
                pick = central_face(faces, img.width, img.height)
                face = centre_box(img.width, img.height) if pick is None else faces[pick]
                no_face[start + i] = pick is None
                crops.append(analyzer.detector.crops(img, [face])[0])
            vectors[start : start + len(chunk)] = analyzer.embedder.embed(np.stack(crops))
            if progress:
                progress(min(start + BATCH, len(paths)), len(paths))
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
