"""Squared Euclidean distances between embeddings: the one NumPy implementation.

Verification, clustering, person suggestions and the held-out metrics of
fine-tuning all compare embeddings by squared L2 distance; they call these so the
numbers agree everywhere. (Training computes its own on torch tensors, with
gradients: engine/triplet.py.)
"""

from __future__ import annotations

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """[len(a), len(b)] squared distances, computed in place (no n x m temporaries).

    ``b_sq`` (the squared norms of ``b``'s rows) may be passed when ``b`` is reused.
    """
    if b_sq is None:
        b_sq = np.einsum("ij,ij->i", b, b)
    d = a @ b.T
    d *= -2.0
    d += np.einsum("ij,ij->i", a, a)[:, None]
    d += b_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def squared_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The squared distance of two vectors, in float64."""
    return float(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
