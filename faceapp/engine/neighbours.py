"""The k-nearest-neighbour graph that clustering builds on, and nearest centroids, from faiss.

Up to ``brute_limit`` faces the search is exact (faiss's flat index: blocked BLAS).
Above it an inverted file: k-means cells, each face stored in its nearest cell and
searched in its ``nprobe`` nearest cells. The cells of each face are found once, by
one BLAS pass, and used both to fill the lists and to search them. Finding the cells
costs n * cells, searching them n * nprobe * cell size: cells of sqrt(n / nprobe)
faces balance the two (about 300 at a million faces).
Recall against exact search is measured in bench/cluster_scale.py.
"""

from __future__ import annotations

import os

import numpy as np

# OpenMP threads that spin while waiting slow a shared, busy machine down several-fold
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss
from faiss.contrib.ivf_tools import add_preassigned, search_preassigned


def _drop_self(idx: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from k + 1 results (wherever ties put it)."""
    n = len(idx)
    own = idx == np.arange(n)[:, None]
    # rows where the point itself was not returned (duplicates): drop the last column
    own[~own.any(axis=1), -1] = True
    keep = ~own
    # a row may hold itself once at most: exactly k entries are kept per row
    out_i = idx[keep].reshape(n, k)
    out_d = dist[keep].reshape(n, k)
    return out_i, out_d


def _finish(idx: np.ndarray, sq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    i, d = _drop_self(idx.astype(np.int64), sq, k)
    missing = i < 0  # fewer than k faces in the probed cells
    d = np.sqrt(np.maximum(d, 0.0)).astype(np.float32)
    d[missing] = np.inf
    i[missing] = np.repeat(np.arange(len(i))[:, None], k, axis=1)[missing]
    return i, d


def knn(
    y: np.ndarray,
    k: int,
    *,
    brute_limit: int = 10_000,
    nprobe: int = 10,
    cell_size: int = 0,
    seed: int = 0,
    n_jobs: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row, itself excluded: (indices, Euclidean distances).

    Where a face's probed cells hold fewer than k others, the missing entries point
    at the face itself with distance inf. ``cell_size`` 0: the balanced size.
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    n, dim = y.shape
    k = min(k, n - 1)
    faiss.omp_set_num_threads(max(1, n_jobs))
    if n <= brute_limit:
        flat = faiss.IndexFlatL2(dim)
        flat.add(y)
        sq, idx = flat.search(y, k + 1)
        return _finish(idx, sq, k)
    cell_size = cell_size or max(64, int(np.sqrt(n / max(nprobe, 1))))
    nlist = max(16, n // cell_size)
    nprobe = min(nprobe, nlist)
    rng = np.random.default_rng(seed)
    train = y[rng.choice(n, min(n, 20 * nlist), replace=False)]
    kmeans = faiss.Kmeans(dim, nlist, niter=8, seed=seed, max_points_per_centroid=20)
    kmeans.train(train)
    if kmeans.centroids is None:
        raise RuntimeError("faiss k-means training left no centroids")
    quantizer = faiss.IndexFlatL2(dim)
    quantizer.add(kmeans.centroids)
    cell_sq, cells = quantizer.search(y, nprobe)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist)
    index.nprobe = nprobe
    add_preassigned(index, y, np.ascontiguousarray(cells[:, 0]))
    sq, idx = search_preassigned(index, y, k + 1, cells, cell_sq)
    return _finish(idx, sq, k)


def nearest(points: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest of ``points`` to each query, exactly: (index, squared L2 distance)."""
    flat = faiss.IndexFlatL2(points.shape[1])
    flat.add(np.ascontiguousarray(points, dtype=np.float32))
    sq, idx = flat.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
    return idx[:, 0].astype(np.int64), sq[:, 0]
