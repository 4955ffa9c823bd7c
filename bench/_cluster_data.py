"""Face embeddings for the clustering benchmarks: LFW from a library or the embedding
cache, and synthetic identities built around the real ones.

A library scanned by the app (``faceapp scan .../lfw-deepfunneled``) is the real
thing: every detected face is clustered, the face nearest each image centre is the
labelled subject (as in the LFW protocol), other faces are clustered but not
scored. The cache written by ``bench/lfw_accuracy.py --all`` (one central face per
image) is the fallback while no scanned library is at hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("FACEAPP_LFW", ROOT.parent / "shared" / "data" / "lfw"))
CACHE = ROOT / ".venv" / "faceapp-test-data" / "lfw_embeddings.npz"
RESULTS = Path(__file__).resolve().parent / "results"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class Faces:
    """Faces to cluster. ``subject`` marks the labelled face of each image."""

    vectors: np.ndarray  # float32 [n, 512] unit
    photo: np.ndarray  # int64 photo index per face (cannot-link groups)
    person: np.ndarray  # int64 identity index per face (-1 for background faces)
    subject: np.ndarray  # bool
    names: list[str]  # identity index -> name
    paths: list[str]  # photo index -> relative path
    threshold: float
    source: str

    def __len__(self) -> int:
        return len(self.vectors)

    def restrict(self, keep_photo: np.ndarray) -> Faces:
        """Only the faces of photos where ``keep_photo[photo]`` is true."""
        rows = keep_photo[self.photo]
        return Faces(
            self.vectors[rows],
            self.photo[rows],
            self.person[rows],
            self.subject[rows],
            self.names,
            self.paths,
            self.threshold,
            self.source,
        )


def _identity_index(paths: list[str]) -> tuple[np.ndarray, list[str]]:
    names = [p.split("/")[0] for p in paths]
    uniq = sorted(set(names))
    index = {n: i for i, n in enumerate(uniq)}
    return np.array([index[n] for n in names], np.int64), uniq


def calibrated_threshold(paths: list[str], vectors: np.ndarray) -> float:
    """Best-accuracy threshold on pairsDevTrain (the app's own calibration set)."""
    from faceapp.engine import metrics

    pairs_file = LFW / "pairsDevTrain.txt"
    where = {p: i for i, p in enumerate(paths)}
    pairs = [p for p in metrics.read_pairs(pairs_file) if p.a in where and p.b in where]
    if len(pairs) < 100:
        return 1.1
    a = vectors[[where[p.a] for p in pairs]]
    b = vectors[[where[p.b] for p in pairs]]
    d = ((a - b) ** 2).sum(axis=1)
    return float(metrics.best_threshold(d, np.array([p.same for p in pairs])))


def from_cache(path: Path = CACHE) -> Faces:
    """One central face per LFW image from the embedding cache, turned into the app's
    embedding (as pipeline.Analyzer: no flip, the casia centre subtracted, threshold
    of the weights) when the cache holds the plain casia embeddings."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    paths = [str(p) for p in data["paths"]]
    threshold = None
    if "embeddings" in data:
        vectors = unit(data["embeddings"])
    else:
        from faceapp.engine import weights

        defaults = weights.SOURCE_DEFAULTS["casia-webface"]
        vectors = unit(data["plain"])
        if defaults.centre:
            vectors = unit(vectors - np.load(weights.CENTRES_DIR / defaults.centre))
        threshold = defaults.threshold
    keep = ~data["no_face"] if "no_face" in data else np.ones(len(paths), bool)
    paths = [p for p, k in zip(paths, keep, strict=True) if k]
    vectors = vectors[keep]
    person, names = _identity_index(paths)
    n = len(paths)
    return Faces(
        vectors,
        np.arange(n),
        person,
        np.ones(n, bool),
        names,
        paths,
        threshold or calibrated_threshold(paths, vectors),
        f"embedding cache {path.name} ({n} images with a face, as the app embeds them)",
    )


def from_library(path: Path) -> Faces:
    """Every face of a library scanned from lfw-deepfunneled, with its active model."""
    from faceapp.engine.library import Library

    lib = Library(path)
    ids, vectors = lib.embeddings()
    rows = lib.conn.execute(
        "SELECT f.id, p.id, p.path, p.width, p.height, f.x1, f.y1, f.x2, f.y2"
        " FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.status = 'ok' ORDER BY f.id"
    ).fetchall()
    model = lib.active_model()
    faceless = lib.conn.execute(
        "SELECT COUNT(*) FROM photos p WHERE p.status = 'ok'"
        " AND NOT EXISTS (SELECT 1 FROM faces f WHERE f.photo_id = p.id)"
    ).fetchone()[0]
    lib.close()
    info = {r[0]: r for r in rows}
    keep = np.array([int(i) in info for i in ids])
    ids, vectors = ids[keep], vectors[keep]
    photo_ids = sorted({info[int(i)][1] for i in ids})
    photo_index = {p: k for k, p in enumerate(photo_ids)}
    paths = [""] * len(photo_ids)
    photo = np.empty(len(ids), np.int64)
    centre_d = np.empty(len(ids))
    for k, fid in enumerate(ids):
        _, pid, ppath, w, h, x1, y1, x2, y2 = info[int(fid)]
        photo[k] = photo_index[pid]
        paths[photo[k]] = ppath
        centre_d[k] = ((x1 + x2) / 2 - w / 2) ** 2 + ((y1 + y2) / 2 - h / 2) ** 2
    subject = np.zeros(len(ids), bool)
    order = np.lexsort((centre_d, photo))
    first = np.ones(len(order), bool)
    first[1:] = photo[order][1:] != photo[order][:-1]
    subject[order[first]] = True
    photo_person, names = _identity_index(paths)
    person = np.where(subject, photo_person[photo], -1)
    return Faces(
        unit(vectors),
        photo,
        person,
        subject,
        names,
        paths,
        float(model.threshold) if model else 1.1,
        f"library {path} ({len(paths)} photos with {len(ids)} faces, {faceless} photos"
        f" without a detected face, not scored; model {model.name if model else '?'})",
    )


def load(library: Path | None = None, cache: Path | None = None) -> Faces:
    if library is not None:
        return from_library(Path(library))
    path = Path(cache) if cache else CACHE
    if not path.exists():
        raise SystemExit(
            f"no embeddings: pass --library LIB (a scan of {LFW / 'lfw-deepfunneled'})"
            f" or create {path} with bench/lfw_accuracy.py --all"
        )
    return from_cache(path)


def people_with_at_least(faces: Faces, k: int) -> np.ndarray:
    """Mask over photos: the photo's folder person has at least ``k`` photos."""
    _, names = _identity_index(faces.paths)
    photo_person, _ = _identity_index(faces.paths)
    counts = np.bincount(photo_person, minlength=len(names))
    return counts[photo_person] >= k


def synthetic(
    real: Faces,
    n: int,
    *,
    seed: int = 0,
    jitter: float = 0.1,
    repeat_jitter: float = 0.4,
    spread: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces: the real subject faces, then synthetic identities around them.

    A synthetic identity borrows the within-person variation of a real person with
    at least two photos (their faces minus their centroid, each used once with a
    little noise; reused ones get enough noise to be a new photo, not a near
    duplicate) and places it at a new centre, the normalised a + spread * (b - c)
    of three real identity centres, which keeps it on the face manifold at realistic
    distances from everyone. Sizes follow a heavy tail like a real photo collection
    (most people in a few photos, a few in thousands). Returns (vectors, identity).
    """
    rng = np.random.default_rng(seed)
    subj = real.subject
    x0, p0 = real.vectors[subj], real.person[subj]
    x0, p0 = x0[: min(n, len(x0))], p0[: min(n, len(x0))]
    ids, inverse, counts = np.unique(p0, return_inverse=True, return_counts=True)
    sums = np.zeros((len(ids), x0.shape[1]))
    np.add.at(sums, inverse, x0)
    centroids = sums / counts[:, None]
    donors = np.flatnonzero(counts >= 2)
    members = [np.flatnonzero(inverse == d) for d in range(len(ids))]
    out_x = [x0]
    out_p = [inverse.astype(np.int64)]
    next_id = len(ids)
    need = n - len(x0)
    while need > 0:
        size = int(min(rng.zipf(1.8), 2000, need))
        donor = int(rng.choice(donors))
        a, b, c = rng.choice(len(ids), 3, replace=False)
        centre = unit((centroids[a] + spread * (centroids[b] - centroids[c]))[None])[0]
        radius = np.linalg.norm(centroids[donor])
        own = members[donor]
        pick = np.resize(rng.permutation(own), size)
        resid = x0[pick] - centroids[donor]
        scale = np.where(np.arange(size) < len(own), jitter, repeat_jitter)[:, None]
        noise = rng.normal(size=resid.shape) * scale / np.sqrt(x0.shape[1])
        out_x.append(unit(centre * radius + resid + noise))
        out_p.append(np.full(size, next_id, np.int64))
        next_id += 1
        need -= size
    return np.concatenate(out_x), np.concatenate(out_p)
