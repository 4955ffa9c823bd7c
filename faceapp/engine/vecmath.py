"""Vector helpers shared by neighbour search, clustering and person distances:
unit rows, squared distances without large temporaries, row-wise top k, sums per
label, and BLAS kept to one thread where many small products run on threads."""

from __future__ import annotations

import contextlib

import numpy as np


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit rows (float32); zero rows stay zero."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.maximum(norms, 1e-12)


def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


def sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances, computed in place (no n x m temporaries)."""
    if b_sq is None:
        b_sq = np.einsum("ij,ij->i", b, b)
    d = a @ b.T
    d *= -2.0
    d += np.einsum("ij,ij->i", a, a)[:, None]
    d += b_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def topk_rows(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k smallest entries of each row, sorted."""
    k = min(k, d.shape[1])
    idx = np.argpartition(d, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(d, idx, axis=1)
    order = np.argsort(vals, axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def sum_by_label(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Row sums per label 0..k-1 (labels < 0 skipped): a sparse product, not np.add.at."""
    from scipy.sparse import csr_matrix

    valid = np.flatnonzero(labels >= 0)
    onehot = csr_matrix(
        (np.ones(len(valid), np.float32), (labels[valid], valid)), shape=(k, len(x))
    )
    return np.asarray(onehot @ x, dtype=np.float64)


def squared_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The squared distance of two vectors, in float64."""
    return float(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
