"""Automatic clusters: HDBSCAN on the active model's embeddings, bound by the user's labels.

A face is confirmed (``faces.person_id``, set only by the user), in an automatic
cluster (``faces.cluster_id``) or Unknown (HDBSCAN noise). :func:`recluster` groups
the *unconfirmed* faces only, so re-clustering can never change a confirmed face or a
name. The confirmed faces act as anchors: an unconfirmed face close to a named
person's faces (a suggestion with confidence >= 0.5, see ``hold_ratio``) is left in
Unknown for the "Is this X?" queue instead of forming a new cluster, so after a
rescan known people come back as suggestions and only the rest is clustered.

The algorithm (:func:`cluster_vectors`):

1. PCA of the unit embeddings to ``pca_dims`` (64) dimensions.
2. HDBSCAN, ``min_cluster_size`` 4, ``min_samples`` 1, excess of mass. Up to
   ``exact_limit`` faces the hdbscan package's estimator runs as is. Above it the
   mutual-reachability minimum spanning tree is built from a k-nearest-neighbour
   graph (exact search up to ``brute_limit`` faces, then an inverted file over
   k-means cells with per-face probing) and the hdbscan package turns that tree into
   the condensed tree and the clusters. Within the kNN graph the tree is exact, and
   on LFW the clusters match the estimator's (BCubed F 0.9028 vs 0.9029 on all
   13,233 images, 1.6 s vs 13 s). It keeps 100,000 faces well under a minute on two
   cores, where the estimator's kd-tree Boruvka takes many minutes.
3. Cannot-link: two faces of one photo never share a cluster; the face farther from
   the cluster centroid leaves it.
4. Trim: a member farther than ``trim_ratio`` x threshold (squared L2) from its
   cluster's unit centroid leaves it. Single linkage lets a look-alike stranger in
   through one close face, and naming a cluster confirms all of its faces.
5. Clusters whose unit centroids are under ``merge_ratio`` x threshold apart and
   share no photo merge (one person split by lighting or age).
6. Loose clusters dissolve (mean squared distance to the centroid over
   ``cohesion_ratio`` x threshold). Faces nobody could recognise (blurred, tiny,
   half hidden, a hand or a logo taken for a face) drift to a common region of the
   embedding space: on the scanned LFW library they formed the second largest
   cluster (421 background faces); no real person's cluster there is that loose.
7. Optionally (``attach_ratio``, off by default) noise faces join the nearest
   centroid: on LFW it helps the 158-people set a little and adds wrong faces in
   the full set, where most noise faces are strangers.

Defaults were chosen on LFW with ``bench/cluster_quality.py`` (one-at-a-time sweeps
and grids over min_cluster_size, min_samples, pca_dims, trim, merge, cohesion and
attach; figures in bench/results/cluster_quality*.json), on a library of all 13,233
images scanned by the app (15,182 faces, casia weights, threshold 1.328), every face
clustered and the face nearest each image centre scored. Against plain HDBSCAN
(PCA 64, min_cluster_size 5, min_samples 1): people with >= 10 photos BCubed F
0.9868 vs 0.9848 (precision 0.9987 vs 0.9973, Unknown 1.1% vs 1.0%), all images
0.9028 vs 0.8759 (precision 0.913 vs 0.861, Unknown 43% vs 42%).
min_cluster_size 5+ loses people with few photos (all images: 0.888 at 5); 3 or 2
score higher on all images (0.916, 0.925: tiny clusters of people with 2-3 photos)
but split the people with many photos (0.9859, 0.9716 on the 158 people);
min_samples 2+ and pca_dims <= 32 lose recall; "leaf" selection shatters people;
selection_epsilon up to 0.6 changes nothing; a stricter trim (0.6) or attaching
noise (0.5-0.7) helps one set and costs the other.

Cluster ids stay stable across runs: new clusters are matched greedily to the old
ones by how many faces they share (:func:`match_cluster_ids`), and "not in this
cluster" marks (``cluster_rejections``) keep a face out of that cluster id.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from faceapp.engine.distances import squared_distances as _sq_dists
from faceapp.engine.library import Library, LibraryError

DEFAULT_THRESHOLD = 1.1  # squared L2; only used when no model threshold is known


@dataclass(frozen=True)
class ClusterParams:
    """Clustering options. Defaults chosen on LFW (bench/cluster_quality.py, see the
    module notes): they beat plain HDBSCAN on both the 158-people set and all 13,233
    images, with the same-photo constraint on."""

    min_cluster_size: int = 4  # 4 finds people with few photos; 5 and more lose them
    min_samples: int = 1  # 2+ trades a little precision on hard sets for much recall
    pca_dims: int = 64  # 0 keeps all 512; 32 and fewer lose accuracy
    selection_method: str = "eom"  # "leaf" shatters people into pieces
    selection_epsilon: float = 0.0  # Euclidean in PCA space; no effect below ~0.5
    # members farther than trim_ratio * threshold (squared L2) from their cluster's
    # unit centroid leave it (0 disables)
    trim_ratio: float = field(
        default=0.75,
        metadata={"help": "Faces this far from their group's centre (share of the threshold) "
                  "go to Unknown (0: off)."},
    )  # fmt: skip
    # clusters merge when the squared distance between their unit centroids is
    # under merge_ratio * threshold and they share no photo (0 disables)
    merge_ratio: float = 0.4
    # clusters whose mean squared distance to their unit centroid exceeds
    # cohesion_ratio * threshold dissolve into Unknown (garbage and mixed clusters)
    cohesion_ratio: float = field(
        default=0.4,
        metadata={"help": "Groups looser than this (mean distance to the centre, share of "
                  "the threshold) go to Unknown: blurred or partial faces (0: off)."},
    )  # fmt: skip
    # noise faces join the nearest cluster when their squared distance to its unit
    # centroid is under attach_ratio * threshold (0 disables: with many strangers
    # in a library it adds more wrong faces than right ones)
    attach_ratio: float = 0.0
    # recluster(): an unconfirmed face nearer than hold_ratio * threshold to a named
    # person's confirmed faces (a suggestion at confidence 0.5 or more) is left to
    # the suggestions instead of being clustered, so known people do not come back
    # as new clusters after a rescan (0 disables)
    hold_ratio: float = field(
        default=0.6,
        metadata={"help": "Faces this close to a named person (share of the threshold) "
                  "wait as suggestions instead of forming new groups (0: off)."},
    )  # fmt: skip
    algorithm: str = "auto"  # "exact" (hdbscan estimator), "knn" (kNN-graph MST), "auto"
    exact_limit: int = 5_000  # "auto" uses the hdbscan estimator up to this many faces
    knn: int = 15  # neighbours per face in the kNN graph
    brute_limit: int = field(
        default=10_000,
        metadata={"help": "Exact neighbour search up to this many faces, approximate above."},
    )
    nprobe: int = field(
        default=32, metadata={"help": "Cells searched per face by the approximate search."}
    )
    n_jobs: int = 2
    seed: int = 0


@dataclass(frozen=True)
class ClusterResult:
    """Labels for a set of vectors (``-1`` = noise) and what each step did."""

    labels: np.ndarray
    n_clusters: int
    seconds: float
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterSummary:
    """What :func:`recluster` produced (the CLI prints the first four as JSON)."""

    clusters: int
    unknown: int  # unconfirmed faces in no cluster (suggested ones included)
    people: int
    seconds: float
    faces: int = 0
    suggested: int = 0  # of the unknown: held back as suggestions for a named person


# -- numeric core ------------------------------------------------------------------


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit rows (float32); zero rows stay zero."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.maximum(norms, 1e-12)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


def pca_reduce(x: np.ndarray, dims: int, *, max_fit: int = 20_000, seed: int = 0) -> np.ndarray:
    """Project onto the top ``dims`` principal components (fitted on a sample)."""
    n, d = x.shape
    if dims <= 0 or dims >= d or n <= dims:
        return np.ascontiguousarray(x, dtype=np.float32)
    rng = np.random.default_rng(seed)
    fit = x if n <= max_fit else x[rng.choice(n, max_fit, replace=False)]
    mean = fit.mean(axis=0)
    # eigenvectors of the covariance: d x d, cheap for d = 512
    centred = (fit - mean).astype(np.float32)
    cov = (centred.T @ centred).astype(np.float64) / max(len(fit) - 1, 1)
    with _one_blas_thread():  # a threaded eigh of 512 x 512 is 10x slower on 2 busy cores
        _, vecs = np.linalg.eigh(cov)
    basis = vecs[:, ::-1][:, :dims].astype(np.float32)
    return np.ascontiguousarray((x - mean) @ basis, dtype=np.float32)


def _rank_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """``|b|^2 - 2 a.b``: orders each row like the squared distance, one pass cheaper."""
    d = a @ b.T
    d *= -2.0
    d += b_sq[None, :]
    return d


def _topk_rows(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k smallest entries of each row, sorted."""
    k = min(k, d.shape[1])
    idx = np.argpartition(d, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(d, idx, axis=1)
    order = np.argsort(vals, axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def knn_brute(y: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (excluding the point itself): (indices, Euclidean distances)."""
    n = len(y)
    k = min(k, n - 1)
    sq = np.einsum("ij,ij->i", y, y)
    out_i = np.empty((n, k), np.int64)
    out_d = np.empty((n, k), np.float32)
    for s in range(0, n, block):
        q = y[s : s + block]
        d = _rank_dists(q, y, sq)
        rows = np.arange(d.shape[0])
        d[rows, rows + s] = np.inf
        i, v = _topk_rows(d, k)
        v += sq[s : s + block, None]
        out_i[s : s + block], out_d[s : s + block] = i, np.sqrt(np.maximum(v, 0.0))
    return out_i, out_d


def _sum_by_label(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Row sums per label 0..k-1 (labels < 0 skipped): a sparse product, not np.add.at."""
    from scipy.sparse import csr_matrix

    valid = np.flatnonzero(labels >= 0)
    onehot = csr_matrix(
        (np.ones(len(valid), np.float32), (labels[valid], valid)), shape=(k, len(x))
    )
    return np.asarray(onehot @ x, dtype=np.float64)


def _kmeans(y: np.ndarray, k: int, iters: int, rng: np.random.Generator) -> np.ndarray:
    centres = y[rng.choice(len(y), k, replace=False)].copy()
    for _ in range(iters):
        assign = np.argmin(_rank_dists(y, centres, np.einsum("ij,ij->i", centres, centres)), 1)
        sums = _sum_by_label(y, assign, k)
        counts = np.bincount(assign, minlength=k)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def _parallel(fn: Callable[[int], None], items: int, n_jobs: int) -> None:
    """Run ``fn(i)`` for i < items on ``n_jobs`` threads, BLAS single-threaded.

    Many small matrix products are faster on one BLAS thread each (a threaded BLAS
    spends its time synchronising); numpy releases the GIL inside them, so plain
    threads use the cores.
    """
    with _one_blas_thread():
        if n_jobs <= 1 or items < 2:
            for i in range(items):
                fn(i)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n_jobs) as pool:
            for _ in pool.map(fn, range(items)):
                pass


def knn_ivf(
    y: np.ndarray,
    k: int,
    *,
    nprobe: int = 16,
    seed: int = 0,
    n_jobs: int = 2,
    cells_per_sqrt: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate k nearest neighbours through an inverted file over k-means cells.

    Every point lives in the list of its nearest cell and looks for neighbours in
    the lists of its own ``nprobe`` nearest cells. The work is done cell by cell:
    all the points probing a cell against that cell's members, one matrix product,
    then merged into each point's running top k. Recall is measured in
    bench/cluster_scale.py (about 0.9 on LFW at a few percent of brute force).
    """
    n = len(y)
    k = min(k, n - 1)
    rng = np.random.default_rng(seed)
    nlist = int(np.clip(cells_per_sqrt * np.sqrt(n), 16, 8192))
    nprobe = min(nprobe, nlist)
    train = y if n <= 16 * nlist else y[rng.choice(n, 16 * nlist, replace=False)]
    with _one_blas_thread():
        centres = _kmeans(train, nlist, 6, rng)
    c_sq = np.einsum("ij,ij->i", centres, centres)
    probes = np.empty((n, nprobe), np.int64)

    def probe_block(b: int) -> None:
        s = b * 4096
        d = _rank_dists(y[s : s + 4096], centres, c_sq)
        near, _ = _topk_rows(d, nprobe)
        probes[s : s + 4096] = near

    _parallel(probe_block, (n + 4095) // 4096, n_jobs)
    # database lists: each point in its nearest cell, cells contiguous in ``order``
    order = np.argsort(probes[:, 0], kind="stable")
    bounds = np.searchsorted(probes[order, 0], np.arange(nlist + 1))
    ys = y[order]
    sq = np.einsum("ij,ij->i", ys, ys)
    # query lists: the points probing each cell
    q_cell = probes.ravel()
    q_order = np.argsort(q_cell, kind="stable")
    q_point = np.repeat(np.arange(n), nprobe)[q_order]
    q_bounds = np.searchsorted(q_cell[q_order], np.arange(nlist + 1))
    jobs = max(1, min(n_jobs, nlist))
    best_i = np.zeros((jobs, n, k), np.int64)
    best_d = np.full((jobs, n, k), np.inf, np.float32)

    def search(job: int) -> None:
        bi, bd = best_i[job], best_d[job]
        for c in range(job, nlist, jobs):
            lo, hi = bounds[c], bounds[c + 1]
            queries = q_point[q_bounds[c] : q_bounds[c + 1]]
            if hi == lo or len(queries) == 0:
                continue
            d = _rank_dists(y[queries], ys[lo:hi], sq[lo:hi])
            d[order[lo:hi][None, :] == queries[:, None]] = np.inf  # not itself
            kk = min(k, hi - lo)
            i, v = _topk_rows(d, kk)
            merged_d = np.concatenate([bd[queries], v], axis=1)
            merged_i = np.concatenate([bi[queries], order[lo + i]], axis=1)
            top, top_d = _topk_rows(merged_d, k)
            bd[queries] = top_d
            bi[queries] = np.take_along_axis(merged_i, top, axis=1)

    with _one_blas_thread():
        if jobs == 1:
            search(0)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(search, range(jobs)))
    if jobs > 1:  # each thread saw different cells: merge their top k
        d_all = np.concatenate(list(best_d), axis=1)
        i_all = np.concatenate(list(best_i), axis=1)
        top, top_d = _topk_rows(d_all, k)
        out_i, rank = np.take_along_axis(i_all, top, axis=1), top_d
    else:
        out_i, rank = best_i[0], best_d[0]
    q_sq = np.einsum("ij,ij->i", y, y)
    out_d = np.sqrt(np.maximum(rank + q_sq[:, None], 0.0)).astype(np.float32)
    missing = ~np.isfinite(rank)
    out_d[missing] = np.inf
    out_i[missing] = np.repeat(np.arange(n)[:, None], k, axis=1)[missing]
    return out_i, out_d


def refine_knn(
    y: np.ndarray,
    nbr: np.ndarray,
    dist: np.ndarray,
    *,
    iters: int = 1,
    block: int = 1024,
    n_jobs: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """NN-descent: a point's neighbours' neighbours are probably its neighbours too.

    One pass over the k * k candidates of each point lifts an inverted-file search
    from ~75% to ~95% recall on face embeddings (measured in bench/cluster_scale.py),
    and the short edges that shape clusters are found almost all.
    """
    n, k = nbr.shape
    for _ in range(iters):
        new_i = np.empty_like(nbr)
        new_d = np.empty_like(dist)

        def step(b: int, nbr: np.ndarray = nbr, new_i: np.ndarray = new_i, new_d=new_d) -> None:
            s = b * block
            e = min(n, s + block)
            own = nbr[s:e]
            cand = np.concatenate([own, nbr[own].reshape(e - s, k * k)], axis=1)
            diff = y[cand] - y[s:e, None, :]
            d = np.einsum("ijk,ijk->ij", diff, diff)
            d[cand == np.arange(s, e)[:, None]] = np.inf
            order = np.argsort(d, axis=1, kind="stable")
            c_sorted = np.take_along_axis(cand, order, axis=1)
            d_sorted = np.take_along_axis(d, order, axis=1)
            dup = np.zeros_like(c_sorted, bool)
            dup[:, 1:] = c_sorted[:, 1:] == c_sorted[:, :-1]
            d_sorted[dup] = np.inf
            order = np.argsort(d_sorted, axis=1, kind="stable")[:, :k]
            new_i[s:e] = np.take_along_axis(c_sorted, order, axis=1)
            new_d[s:e] = np.sqrt(np.take_along_axis(d_sorted, order, axis=1))

        _parallel(step, (n + block - 1) // block, n_jobs)
        nbr, dist = new_i, new_d
    return nbr, dist


def _label_mst(edges_i: np.ndarray, edges_j: np.ndarray, w: np.ndarray) -> np.ndarray:
    from hdbscan._hdbscan_linkage import label

    mst = np.column_stack([edges_i, edges_j, w]).astype(np.float64)
    mst = mst[np.argsort(mst[:, 2], kind="stable")]
    return label(mst)


def _tree_labels(single_linkage: np.ndarray, params: ClusterParams) -> np.ndarray:
    from hdbscan.hdbscan_ import _tree_to_labels

    labels = _tree_to_labels(
        None,
        single_linkage,
        min_cluster_size=params.min_cluster_size,
        cluster_selection_method=params.selection_method,
        allow_single_cluster=False,
        cluster_selection_epsilon=params.selection_epsilon,
    )[0]
    return np.asarray(labels, dtype=np.int64)


def hdbscan_knn(y: np.ndarray, params: ClusterParams) -> np.ndarray:
    """HDBSCAN whose mutual-reachability MST comes from a kNN graph.

    Within the kNN graph the tree is exact; groups the graph leaves disconnected
    (islands of at least ``knn`` + 1 mutual neighbours, i.e. far-apart people) are
    joined by the MST of their centroids, which only shapes the top of the hierarchy.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    n = len(y)
    k = max(params.knn, params.min_samples)
    if n <= params.brute_limit:
        nbr, dist = knn_brute(y, k)
    else:
        nbr, dist = knn_ivf(y, k, nprobe=params.nprobe, seed=params.seed, n_jobs=params.n_jobs)
    m = params.min_samples
    # as the hdbscan package: the distance to the min_samples-th other point
    core = dist[:, min(m, dist.shape[1]) - 1].astype(np.float64)
    rows = np.repeat(np.arange(n), nbr.shape[1])
    cols = nbr.ravel()
    d = dist.ravel().astype(np.float64)
    ok = np.isfinite(d)
    rows, cols, d = rows[ok], cols[ok], d[ok]
    w = np.maximum(d, np.maximum(core[rows], core[cols])) + 1e-9  # explicit zeros drop edges
    graph = coo_matrix((w, (rows, cols)), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    ei, ej, ew = tree.row, tree.col, tree.data
    n_comp, comp = connected_components(tree, directed=False)
    if n_comp > 1:
        centroids = _sum_by_label(y, comp, n_comp)
        centroids /= np.bincount(comp, minlength=n_comp)[:, None]
        cd = np.sqrt(_sq_dists(centroids.astype(np.float32), centroids.astype(np.float32)))
        ctree = minimum_spanning_tree(np.triu(cd.astype(np.float64) + 1e-9, 1)).tocoo()
        # one representative point per component carries the link
        rep = np.zeros(n_comp, np.int64)
        rep[comp[::-1]] = np.arange(n)[::-1]
        top = max(float(ew.max()) if len(ew) else 0.0, 1e-6)
        ei = np.concatenate([ei, rep[ctree.row]])
        ej = np.concatenate([ej, rep[ctree.col]])
        ew = np.concatenate([ew, np.maximum(ctree.data, top)])
    return _tree_labels(_label_mst(ei, ej, ew), params)


def hdbscan_exact(y: np.ndarray, params: ClusterParams) -> np.ndarray:
    """The hdbscan package's own estimator (kd-tree Boruvka)."""
    import hdbscan

    model = hdbscan.HDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=params.min_samples,
        cluster_selection_method=params.selection_method,
        cluster_selection_epsilon=params.selection_epsilon,
        core_dist_n_jobs=params.n_jobs,
        algorithm="best",
    )
    return np.asarray(model.fit(y.astype(np.float64)).labels_, dtype=np.int64)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive labels 0..k-1 (largest cluster first), -1 stays noise."""
    out = np.full(len(labels), -1, np.int64)
    valid = labels >= 0
    if not valid.any():
        return out
    uniq, inv, counts = np.unique(labels[valid], return_inverse=True, return_counts=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.lexsort((uniq, -counts))] = np.arange(len(uniq))
    out[valid] = rank[inv]
    return out


def _centroids(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return normalize(_sum_by_label(x, labels, k))


def enforce_cannot_link(x: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> int:
    """Two faces of one photo (same ``groups`` value) never share a cluster.

    In each offending cluster the face nearest the centroid stays and the others
    become noise (they may still join another cluster later). Returns how many left.
    """
    valid = np.flatnonzero(labels >= 0)
    if len(valid) == 0:
        return 0
    key = np.stack([labels[valid], groups[valid]], axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    dup = valid[counts[inv] > 1]
    if len(dup) == 0:
        return 0
    k = int(labels.max()) + 1
    cent = _centroids(x, labels, k)
    dist = np.einsum("ij,ij->i", x[dup] - cent[labels[dup]], x[dup] - cent[labels[dup]])
    order = np.lexsort((dist, groups[dup], labels[dup]))
    seen: set[tuple[int, int]] = set()
    removed = 0
    for i in dup[order]:
        pair = (int(labels[i]), int(groups[i]))
        if pair in seen:
            labels[i] = -1
            removed += 1
        else:
            seen.add(pair)
    return removed


def attach_noise(
    x: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_sq: float, block: int = 4096
) -> int:
    """Noise faces join the nearest cluster centroid under ``max_sq`` (squared L2).

    A cluster that already holds a face of the same photo is skipped (cannot-link);
    of two noise faces of one photo heading for one cluster, the nearer wins.
    """
    noise = np.flatnonzero(labels < 0)
    if len(noise) == 0 or labels.max() < 0 or max_sq <= 0:
        return 0
    k = int(labels.max()) + 1
    cent = _centroids(x, labels, k)
    taken = {
        (int(g), int(c)) for g, c in zip(groups[labels >= 0], labels[labels >= 0], strict=True)
    }
    best: list[tuple[float, int, int]] = []
    for s in range(0, len(noise), block):
        idx = noise[s : s + block]
        d = _sq_dists(x[idx], cent)
        top = min(4, k)
        ci, cv = _topk_rows(d, top)
        for row, i in enumerate(idx):
            for c, v in zip(ci[row], cv[row], strict=True):
                if v >= max_sq:
                    break
                if (int(groups[i]), int(c)) not in taken:
                    best.append((float(v), int(i), int(c)))
                    break
    attached = 0
    for v, i, c in sorted(best):
        del v
        if (int(groups[i]), c) in taken:
            continue
        labels[i] = c
        taken.add((int(groups[i]), c))
        attached += 1
    return attached


def trim_outliers(
    x: np.ndarray, labels: np.ndarray, max_sq: float, min_size: int, passes: int = 2
) -> int:
    """Members farther than ``max_sq`` (squared L2) from their cluster's unit centroid
    become noise; a cluster left smaller than ``min_size`` dissolves.

    Single-linkage chaining (HDBSCAN with min_samples 1) lets a look-alike stranger
    join a cluster through one close face; naming the cluster would then confirm the
    stranger too. Trimmed faces stay in Unknown, where suggestions can still
    propose them once the cluster has a name. Returns how many faces left.
    """
    if max_sq <= 0 or labels.max() < 0:
        return 0
    before = int((labels >= 0).sum())
    for _ in range(passes):
        k = int(labels.max()) + 1
        cent = _centroids(x, labels, k)
        members = np.flatnonzero(labels >= 0)
        diff = x[members] - cent[labels[members]]
        far = members[np.einsum("ij,ij->i", diff, diff) > max_sq]
        if len(far) == 0:
            break
        labels[far] = -1
    sizes = np.bincount(labels[labels >= 0], minlength=int(labels.max()) + 1)
    labels[(labels >= 0) & (sizes[np.maximum(labels, 0)] < min_size)] = -1
    return before - int((labels >= 0).sum())


def dissolve_loose_clusters(x: np.ndarray, labels: np.ndarray, max_mean_sq: float) -> int:
    """Clusters whose members sit on average farther than ``max_mean_sq`` (squared L2)
    from their unit centroid become noise.

    Faces nobody could recognise (blurred, tiny, half hidden, a hand or a logo taken
    for a face) have embeddings that drift to a common region and form one large,
    loose "garbage" cluster; a real person's cluster is much tighter. Mixed clusters
    of look-alikes are loose too. Returns how many faces left.
    """
    if max_mean_sq <= 0 or labels.max() < 0:
        return 0
    k = int(labels.max()) + 1
    cent = _centroids(x, labels, k)
    members = np.flatnonzero(labels >= 0)
    diff = x[members] - cent[labels[members]]
    sums = np.bincount(labels[members], weights=np.einsum("ij,ij->i", diff, diff), minlength=k)
    mean = sums / np.maximum(np.bincount(labels[members], minlength=k), 1)
    loose = members[mean[labels[members]] > max_mean_sq]
    labels[loose] = -1
    return len(loose)


def merge_close_clusters(
    x: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_sq: float
) -> int:
    """Merge clusters whose unit centroids are under ``max_sq`` apart and share no photo."""
    if max_sq <= 0 or labels.max() < 1:
        return 0
    k = int(labels.max()) + 1
    cent = _centroids(x, labels, k)
    pairs: list[tuple[float, int, int]] = []
    for s in range(0, k, 2048):
        d = _sq_dists(cent[s : s + 2048], cent)
        r, c = np.nonzero(d < max_sq)
        for i, j in zip(r + s, c, strict=True):
            if i < j:
                pairs.append((float(d[i - s, j]), int(i), int(j)))
    if not pairs:
        return 0
    parent = list(range(k))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    photos: dict[int, set[int]] = {c: set() for c in range(k)}
    for g, c in zip(groups[labels >= 0], labels[labels >= 0], strict=True):
        photos[int(c)].add(int(g))
    merged = 0
    for _, a, b in sorted(pairs):
        ra, rb = find(a), find(b)
        if ra == rb or photos[ra] & photos[rb]:
            continue
        if len(photos[ra]) < len(photos[rb]):
            ra, rb = rb, ra
        parent[rb] = ra
        photos[ra] |= photos.pop(rb)
        merged += 1
    roots = np.array([find(c) for c in range(k)])
    valid = labels >= 0
    labels[valid] = roots[labels[valid]]
    return merged


def cluster_vectors(
    vectors: np.ndarray,
    groups: np.ndarray | None = None,
    params: ClusterParams | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> ClusterResult:
    """Cluster unit embeddings; ``groups`` (photo ids) are cannot-link sets.

    ``threshold`` is the model's verification threshold (squared L2 on unit
    vectors); the noise-attachment and merge steps are fractions of it.
    Returns labels numbered by cluster size (0 = largest), ``-1`` = noise.
    """
    params = params or ClusterParams()
    start = time.perf_counter()
    x = normalize(vectors)
    n = len(x)
    groups = np.arange(n) if groups is None else np.asarray(groups, dtype=np.int64)
    stats: dict = {"faces": n}
    if n < max(params.min_cluster_size, 2):
        labels = np.full(n, -1, np.int64)
        return ClusterResult(labels, 0, time.perf_counter() - start, stats)
    t = time.perf_counter()
    y = pca_reduce(x, params.pca_dims, seed=params.seed)
    stats["pca_s"] = time.perf_counter() - t
    t = time.perf_counter()
    algorithm = params.algorithm
    if algorithm == "auto":
        algorithm = "exact" if n <= params.exact_limit else "knn"
    labels = hdbscan_exact(y, params) if algorithm == "exact" else hdbscan_knn(y, params)
    stats["hdbscan_s"] = time.perf_counter() - t
    stats["algorithm"] = algorithm
    stats["hdbscan_clusters"] = int(labels.max()) + 1
    stats["hdbscan_noise"] = int((labels < 0).sum())
    t = time.perf_counter()
    stats["cannot_link_removed"] = enforce_cannot_link(x, labels, groups)
    stats["trimmed"] = trim_outliers(
        x, labels, params.trim_ratio * threshold, params.min_cluster_size
    )
    labels = _relabel(labels)
    stats["merged"] = merge_close_clusters(x, labels, groups, params.merge_ratio * threshold)
    stats["dissolved"] = dissolve_loose_clusters(x, labels, params.cohesion_ratio * threshold)
    labels = _relabel(labels)
    stats["attached"] = attach_noise(x, labels, groups, params.attach_ratio * threshold)
    labels = _relabel(labels)
    stats["post_s"] = time.perf_counter() - t
    return ClusterResult(labels, int(labels.max()) + 1, time.perf_counter() - start, stats)


def match_cluster_ids(
    labels: np.ndarray, old_ids: np.ndarray, *, next_id: int
) -> tuple[np.ndarray, int]:
    """Give each new cluster the id of the old cluster it mostly continues.

    ``old_ids`` holds each face's previous cluster id (0 or negative = none).
    Greedy on overlap counts, biggest first; a pair is accepted when the shared
    faces are at least half of the new cluster or half of the old one, so a cluster
    that splits keeps its id in its larger part and two clusters that merge keep the
    bigger one's id. Unmatched clusters get fresh ids from ``next_id`` on.
    Returns (id per face, 0 = Unknown; the next free id).
    """
    out = np.zeros(len(labels), np.int64)
    valid = labels >= 0
    if not valid.any():
        return out, next_id
    k = int(labels.max()) + 1
    new_size = np.bincount(labels[valid], minlength=k)
    old_valid = old_ids > 0
    old_size: dict[int, int] = {}
    for o, c in zip(*np.unique(old_ids[old_valid], return_counts=True), strict=True):
        old_size[int(o)] = int(c)
    both = valid & old_valid
    pairs, counts = np.unique(
        np.stack([labels[both], old_ids[both]], axis=1), axis=0, return_counts=True
    )
    assigned: dict[int, int] = {}
    used: set[int] = set()
    for idx in np.argsort(-counts, kind="stable"):
        new, old = int(pairs[idx][0]), int(pairs[idx][1])
        if new in assigned or old in used:
            continue
        shared = int(counts[idx])
        if 2 * shared >= new_size[new] or 2 * shared >= old_size[old]:
            assigned[new] = old
            used.add(old)
    ids = np.zeros(k, np.int64)
    for new in range(k):
        if new in assigned:
            ids[new] = assigned[new]
        else:
            ids[new] = next_id
            next_id += 1
    out[valid] = ids[labels[valid]]
    return out, next_id


# -- the library -------------------------------------------------------------------


@dataclass
class FaceState:
    """Every face of the active model's photos: arrays aligned by row."""

    ids: np.ndarray  # int64 face ids, ascending
    vectors: np.ndarray  # float32 [n, 512] unit
    photo: np.ndarray  # int64 photo ids
    person: np.ndarray  # int64, 0 = unconfirmed
    cluster: np.ndarray  # int64, 0 = none

    def __len__(self) -> int:
        return len(self.ids)


_vector_lock = threading.Lock()
_vector_cache: dict[str, tuple[tuple, np.ndarray, np.ndarray]] = {}


def _cached_embeddings(lib: Library) -> tuple[np.ndarray, np.ndarray]:
    """``lib.embeddings()``, kept in memory while the embedding table is unchanged
    (reading 50,000 vectors from SQLite takes seconds; the check takes milliseconds)."""
    model = lib.active_model()
    if model is None:
        return lib.embeddings()
    sig = (
        model.id,
        *lib.conn.execute(
            "SELECT COUNT(*), MAX(e.face_id), SUM(e.face_id) FROM embeddings e"
            " JOIN faces f ON f.id = e.face_id JOIN photos p ON p.id = f.photo_id"
            " WHERE e.model_id = ? AND p.status = 'ok'",
            (model.id,),
        ).fetchone(),
    )
    key = str(lib.path.resolve())
    with _vector_lock:
        hit = _vector_cache.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1], hit[2]
    ids, vectors = lib.embeddings(model.id)
    with _vector_lock:
        if key not in _vector_cache:  # one library at a time: the vectors are large
            _vector_cache.clear()
        _vector_cache[key] = (sig, ids, vectors)
    return ids, vectors


def load_state(lib: Library) -> FaceState:
    """Faces of photos present on disk, with their active-model embeddings."""
    ids, vectors = _cached_embeddings(lib)
    rows = lib.conn.execute(
        "SELECT f.id, f.photo_id, IFNULL(f.person_id, 0), IFNULL(f.cluster_id, 0)"
        " FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.status = 'ok' ORDER BY f.id"
    ).fetchall()
    meta = np.array(rows, dtype=np.int64).reshape(-1, 4)
    if len(meta) == 0 or len(ids) == 0:
        empty = np.zeros(0, np.int64)
        return FaceState(empty, np.zeros((0, vectors.shape[1]), np.float32), empty, empty, empty)
    pos = np.minimum(np.searchsorted(meta[:, 0], ids), len(meta) - 1)
    ok = meta[pos, 0] == ids
    if not ok.all():  # a face deleted between the two reads
        ids, vectors, pos = ids[ok], vectors[ok], pos[ok]
    return FaceState(ids, vectors, meta[pos, 1], meta[pos, 2], meta[pos, 3])


def _farthest_points(x: np.ndarray, k: int) -> np.ndarray:
    """``k`` rows that cover ``x``: the one nearest the mean, then farthest-first."""
    centre = x.mean(axis=0)
    first = int(np.argmin(((x - centre) ** 2).sum(axis=1)))
    chosen = [first]
    nearest = ((x - x[first]) ** 2).sum(axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        np.minimum(nearest, ((x - x[nxt]) ** 2).sum(axis=1), out=nearest)
    return np.array(chosen, np.int64)


class PersonDistances:
    """Squared distances of unconfirmed faces to each person, reused between calls.

    A person's column (distance of every unconfirmed face to the nearest of the
    person's representative confirmed faces) is recomputed only when those
    representatives change, and only new faces get fresh rows otherwise. Answering
    a suggestion changes one person, so the review queue stays interactive on large
    libraries. Not thread-safe: callers hold a lock per cache.
    """

    def __init__(self, max_reps: int = 64) -> None:
        self.max_reps = max_reps
        self.model: object = None
        self.q_ids = np.zeros(0, np.int64)  # unconfirmed face ids (sorted) of the last call
        self.matrix = np.zeros((0, 0), np.float32)  # [q_ids, persons]
        self.keys: dict[int, tuple[int, tuple[int, ...]]] = {}  # person -> (column, reps)

    def compute(self, state: FaceState, model: object = None) -> tuple[np.ndarray, np.ndarray]:
        """(person ids, float32 [unconfirmed faces, persons]) for the rows of ``state``
        with person 0, in order."""
        if model != self.model:
            self.keys = {}
            self.model = model
        unconf = np.flatnonzero(state.person == 0)
        conf = np.flatnonzero(state.person > 0)
        q_ids = state.ids[unconf]
        order = conf[np.argsort(state.person[conf], kind="stable")]
        pids, starts = np.unique(state.person[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        reps: list[np.ndarray] = []
        keys: list[tuple[int, ...]] = []
        for j in range(len(pids)):
            rows = order[bounds[j] : bounds[j + 1]]
            if len(rows) > self.max_reps:
                rows = rows[_farthest_points(state.vectors[rows], self.max_reps)]
            reps.append(rows)
            keys.append(tuple(sorted(state.ids[rows].tolist())))
        out = np.empty((len(unconf), len(pids)), np.float32)
        # rows already known from the last call, and the faces new since
        if len(self.q_ids):
            pos = np.minimum(np.searchsorted(self.q_ids, q_ids), len(self.q_ids) - 1)
            hit = self.q_ids[pos] == q_ids
        else:
            pos, hit = np.zeros(len(q_ids), np.int64), np.zeros(len(q_ids), bool)
        fresh = [
            j
            for j, pid in enumerate(pids.tolist())
            if self.keys.get(pid, (None, None))[1] != keys[j]
        ]
        kept = np.array(sorted(set(range(len(pids))) - set(fresh)), np.int64)
        if len(kept):
            old_cols = np.array([self.keys[int(pids[j])][0] for j in kept])
            out[np.ix_(np.flatnonzero(hit), kept)] = self.matrix[np.ix_(pos[hit], old_cols)]
            miss = np.flatnonzero(~hit)
            if len(miss):
                out[np.ix_(miss, kept)] = _min_sq_dist_grouped(
                    state.vectors[unconf[miss]], state.vectors, [reps[j] for j in kept]
                )
        if fresh:
            out[:, fresh] = _min_sq_dist_grouped(
                state.vectors[unconf], state.vectors, [reps[j] for j in fresh]
            )
        self.q_ids, self.matrix = q_ids, out
        self.keys = {int(pid): (j, keys[j]) for j, pid in enumerate(pids.tolist())}
        return pids, out


def _min_sq_dist_grouped(
    q: np.ndarray, vectors: np.ndarray, groups: list[np.ndarray], block: int = 8192
) -> np.ndarray:
    """[len(q), len(groups)]: squared distance to the nearest row of each group,
    one matrix product for all groups at once."""
    out = np.empty((len(q), len(groups)), np.float32)
    if len(q) == 0 or not groups:
        return out
    sizes = np.array([len(g) for g in groups])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    reps = vectors[np.concatenate(groups)]
    r_sq = np.einsum("ij,ij->i", reps, reps)
    for s in range(0, len(q), block):
        d = _sq_dists(q[s : s + block], reps, r_sq)
        out[s : s + block] = np.minimum.reduceat(d, starts, axis=1)
    return out


def nearest_people(
    state: FaceState,
    rejections: np.ndarray,
    max_reps: int = 64,
    *,
    cache: PersonDistances | None = None,
    model: object = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each unconfirmed face (rows of ``state`` with person 0, in order): the nearest
    person it may belong to and the squared L2 distance to that person's nearest
    confirmed face (at most ``max_reps`` spread-out faces per person).

    A person is not allowed for a face the user rejected from them
    (``rejections``: [face_id, person_id] rows) nor for a face whose photo already has
    a face confirmed for them. Person 0 / distance inf where none is allowed.
    """
    unconf = np.flatnonzero(state.person == 0)
    conf = np.flatnonzero(state.person > 0)
    best_p = np.zeros(len(unconf), np.int64)
    best_d = np.full(len(unconf), np.inf, np.float32)
    if len(unconf) == 0 or len(conf) == 0:
        return best_p, best_d
    cache = cache or PersonDistances(max_reps)
    pids, dist = cache.compute(state, model)
    p_index = {int(p): j for j, p in enumerate(pids)}
    q_of_face = {int(f): i for i, f in enumerate(state.ids[unconf])}
    forbid_q: list[int] = []
    forbid_p: list[int] = []
    for f, p in rejections.tolist():
        if f in q_of_face and p in p_index:
            forbid_q.append(q_of_face[f])
            forbid_p.append(p_index[p])
    conf_pairs = np.unique(np.stack([state.photo[conf], state.person[conf]], axis=1), axis=0)
    q_photo = state.photo[unconf]
    lo = np.searchsorted(conf_pairs[:, 0], q_photo, side="left")
    hi = np.searchsorted(conf_pairs[:, 0], q_photo, side="right")
    for q in np.flatnonzero(hi > lo):
        for p in conf_pairs[lo[q] : hi[q], 1]:
            forbid_q.append(int(q))
            forbid_p.append(p_index[int(p)])
    if forbid_q:
        dist = dist.copy()  # the cache keeps the raw distances
        dist[np.array(forbid_q), np.array(forbid_p)] = np.inf
    j = np.argmin(dist, axis=1)
    v = dist[np.arange(len(unconf)), j]
    best_p = np.where(np.isfinite(v), pids[j], 0)
    return best_p, v


MAX_REPRESENTATIVES = 64  # confirmed faces per person that distances are measured to
_person_lock = threading.Lock()
_person_caches: dict[str, PersonDistances] = {}


def library_nearest_people(lib: Library, state: FaceState) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_people` for a library's state, with the library's rejections and a
    per-library :class:`PersonDistances` cache shared by re-clustering and suggestions."""
    rejections = np.array(
        lib.conn.execute("SELECT face_id, person_id FROM rejections").fetchall(), np.int64
    ).reshape(-1, 2)
    key = str(lib.path.resolve())
    with _person_lock:
        if key not in _person_caches:  # one library at a time: the columns are large
            _person_caches.clear()
        cache = _person_caches.setdefault(key, PersonDistances(MAX_REPRESENTATIVES))
        return nearest_people(
            state, rejections, MAX_REPRESENTATIVES, cache=cache, model=lib.get_meta("active_model")
        )


def model_threshold(lib: Library) -> float:
    model = lib.active_model()
    return float(model.threshold) if model is not None else DEFAULT_THRESHOLD


def _next_cluster_id(lib: Library) -> int:
    row = lib.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'clusters'").fetchone()
    top = lib.conn.execute("SELECT IFNULL(MAX(id), 0) FROM clusters").fetchone()[0]
    return max(int(row[0]) if row else 0, int(top)) + 1


def recluster(
    lib: Library,
    params: ClusterParams | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> ClusterSummary:
    """Re-cluster every unconfirmed face; confirmed faces and names are never touched.

    Writes ``faces.cluster_id`` (stable ids, see :func:`match_cluster_ids`) in one
    transaction; faces the user removed from a cluster stay out of it. Safe to run
    in a worker while the user edits: a face confirmed meanwhile keeps its person.
    """
    start = time.perf_counter()
    if lib.active_model() is None:
        raise LibraryError("the library has no active model yet: scan a folder first")
    if progress:
        progress("loading embeddings")
    params = params or ClusterParams()
    threshold = model_threshold(lib)
    state = load_state(lib)
    unconf = np.flatnonzero(state.person == 0)
    held = np.zeros(len(unconf), bool)
    if params.hold_ratio > 0 and (state.person > 0).any():
        if progress:
            progress("comparing with named people")
        _, dist = library_nearest_people(lib, state)
        held = dist < params.hold_ratio * threshold
    rows = unconf[~held]
    if progress:
        progress(f"clustering {len(rows)} faces")
    vectors = state.vectors if len(rows) == len(state) else state.vectors[rows]
    result = cluster_vectors(vectors, state.photo[rows], params, threshold=threshold)
    labels = np.full(len(unconf), -1, np.int64)  # held faces: Unknown, with a suggestion
    labels[~held] = result.labels
    idx = unconf
    with lib.transaction() as c:
        next_id = _next_cluster_id(lib)
        new_ids, _ = match_cluster_ids(labels, state.cluster[idx], next_id=next_id)
        rejected = {
            (int(f), int(cl))
            for f, cl in c.execute("SELECT face_id, cluster_id FROM cluster_rejections")
        }
        face_ids = state.ids[idx]
        if rejected:
            for row, (f, cl) in enumerate(zip(face_ids, new_ids, strict=True)):
                if cl and (int(f), int(cl)) in rejected:
                    new_ids[row] = 0
        used = np.unique(new_ids[new_ids > 0])
        now = time.time()
        # all of them: an old id may have been dropped meanwhile (the user named it)
        c.executemany(
            "INSERT OR IGNORE INTO clusters(id, created_at) VALUES (?, ?)",
            [(int(cid), now) for cid in used],
        )
        changed = new_ids != state.cluster[idx]
        c.executemany(
            "UPDATE faces SET cluster_id = ? WHERE id = ? AND person_id IS NULL",
            [
                (int(cl) if cl else None, int(f))
                for f, cl in zip(face_ids[changed], new_ids[changed], strict=True)
            ],
        )
        # confirmed faces and faces of missing photos belong to no cluster
        c.execute(
            "UPDATE faces SET cluster_id = NULL WHERE cluster_id IS NOT NULL AND"
            " (person_id IS NOT NULL OR photo_id IN (SELECT id FROM photos WHERE status != 'ok'))"
        )
        c.execute(
            "DELETE FROM clusters WHERE id NOT IN"
            " (SELECT DISTINCT cluster_id FROM faces WHERE cluster_id IS NOT NULL)"
        )
        people = c.execute("SELECT COUNT(*) FROM people").fetchone()[0]
    n_clusters = len(used)
    unknown = int((new_ids == 0).sum())
    return ClusterSummary(
        clusters=n_clusters,
        unknown=unknown,
        people=int(people),
        seconds=round(time.perf_counter() - start, 3),
        faces=len(state),
        suggested=int(held.sum()),
    )
