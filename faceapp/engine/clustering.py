"""HDBSCAN on unit embeddings and the steps after it (:func:`cluster_vectors`).

Which faces are clustered, and how confirmed faces anchor the rest, is
:mod:`faceapp.engine.cluster` (:func:`~faceapp.engine.cluster.recluster`); this module
only groups the vectors it is given.

The algorithm (:func:`cluster_vectors`):

1. PCA of the unit embeddings to ``pca_dims`` (64) dimensions.
2. HDBSCAN, ``min_cluster_size`` 4, ``min_samples`` 1, excess of mass. Up to
   ``exact_limit`` faces the hdbscan package's estimator runs as is. Above it the
   mutual-reachability minimum spanning tree is built from a k-nearest-neighbour
   graph (faiss: exact search up to ``brute_limit`` faces, then an inverted file
   over k-means cells, :mod:`neighbours`) and the hdbscan package turns that tree into
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
6. Loose clusters (mean squared distance to the centroid over ``cohesion_ratio`` x
   threshold) are split by average linkage; cohesive parts of ``min_cluster_size``
   faces stay, the rest goes to Unknown. Faces nobody could recognise (blurred, tiny,
   half hidden, a hand or a logo taken for a face) drift to a common region of the
   embedding space: on the scanned LFW library they formed the second largest
   cluster (421 background faces); no real person's cluster there is that loose. A
   cluster is also loose when a person with too few faces for a cluster of their own
   was hung on a look-alike's: the split keeps the look-alike's cluster.
7. A regroup passes each face's cluster at the last grouping (``before``): when
   HDBSCAN left every face of an old cluster as noise, they stay in it if they still
   make a cluster by the rules above
   (:func:`~faceapp.engine.cluster_steps.keep_previous_clusters`). HDBSCAN
   never returns its whole input as one cluster, so once the other people of a
   small library were named, the last unnamed group vanished at the next rescan.
8. Small groups (``pair_ratio``): noise faces that are among each other's two
   nearest faces (of all faces, so a face beside a cluster is left alone), one per
   photo, no two over the threshold apart and on average under ``pair_ratio`` x
   threshold, form groups of 2-3 (:func:`~faceapp.engine.cluster_steps.pair_noise`);
   the clusters found above stay as they are.
9. Optionally (``attach_ratio``, off by default) noise faces join the nearest
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
but split the people with many photos (0.9859, 0.9716 on the 158 people), and a
merge step after them (merge_ratio 0.5) does not join the parts again. The small
groups step (8) finds those people and leaves the clusters alone. Measured side by
side on the 3,256 LFW photos A-E scanned by the app (3,711 faces; the full scan was
not at hand), min_cluster_size 4, without it / pair_ratio 0.5 / 0.55 / 0.6 (chosen):
people with >= 10 photos BCubed F 0.9891 in all four (precision 1.0, 2 people split);
all images F 0.9139 / 0.9350 / 0.9379 / 0.9393, precision 0.9211 / 0.9197 / 0.9190 /
0.9162, BCubed recall of the people with 2-3 photos 0.584 / 0.821 / 0.858 / 0.890
(min_cluster_size 3: F 0.9216, precision 0.9029; 2: 0.9247, 0.8962, and 4 of the
people with >= 10 photos split). Of the 185 small groups at 0.6, 153 are one
person, 18 hold a background face, 14 mix two people (at 0.7: 42 of 240).
min_samples 2+ and pca_dims <= 32 lose recall; "leaf" selection shatters people;
selection_epsilon up to 0.6 changes nothing; a stricter trim (0.6) or attaching
noise (0.5-0.7) helps one set and costs the other.

Cluster ids stay stable across runs: new clusters are matched greedily to the old
ones by how many faces they share (:func:`match_cluster_ids`), and "not in this
cluster" marks (``cluster_rejections``) keep a face out of that cluster id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from faceapp.engine.cluster_steps import (
    attach_noise,
    enforce_cannot_link,
    keep_previous_clusters,
    merge_close_clusters,
    pair_noise,
    relabel,
    split_loose_clusters,
    trim_outliers,
)
from faceapp.engine.library import DEFAULT_THRESHOLD
from faceapp.engine.neighbours import knn
from faceapp.engine.vecmath import normalize, one_blas_thread, sq_dists, sum_by_label


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
    # cohesion_ratio * threshold are split into tight parts; faces that fit none go to
    # Unknown (garbage clusters go whole, mixed ones keep their main person)
    cohesion_ratio: float = field(
        default=0.4,
        metadata={"help": "Groups looser than this (mean distance to the centre, share of "
                  "the threshold) are split; faces that fit no tight part (blurred or "
                  "partial faces) go to Unknown (0: off)."},
    )  # fmt: skip
    # noise faces join the nearest cluster when their squared distance to its unit
    # centroid is under attach_ratio * threshold (0 disables: with many strangers
    # in a library it adds more wrong faces than right ones)
    attach_ratio: float = 0.0
    # noise faces among each other's two nearest faces, on average under pair_ratio *
    # threshold (squared L2) apart, form groups of 2-3 (0 disables): people with too few
    # faces for min_cluster_size, without a smaller minimum splitting people with many
    pair_ratio: float = field(
        default=0.6,
        metadata={"help": "Two or three unsorted faces that are each other's nearest and "
                  "this close (share of the threshold) form a small group (0: off)."},
    )  # fmt: skip
    # recluster(): an unconfirmed face that the review queue offers as "likely" for a
    # named person (review.likely) waits there instead of being clustered, so known
    # people do not come back as new clusters after a rescan
    hold_likely: bool = field(
        default=True,
        metadata={"help": "Faces that Review finds likely to be a named person wait "
                  "there (one click accepts them) instead of forming new groups."},
    )  # fmt: skip
    # faces whose box is under this many display px (mean side) stay in their photos
    # and in Unknown but are not grouped: on the album of bench/album_effort.py the
    # nearest other face of a face under 20 px was the same person for 6 of 9, from
    # 20 px on for all 285 (bench/small_faces.py: 30-40 px as good as 80+)
    min_face_px: float = field(
        default=20.0,
        metadata={"help": "Faces smaller than this (pixels) stay in their photos and in "
                  "Unknown but are not grouped: too small to recognise (0: group all)."},
    )  # fmt: skip
    algorithm: str = "auto"  # "exact" (hdbscan estimator), "knn" (kNN-graph MST), "auto"
    exact_limit: int = 5_000  # "auto" uses the hdbscan estimator up to this many faces
    knn: int = 15  # neighbours per face in the kNN graph
    brute_limit: int = field(
        default=10_000,
        metadata={"help": "Exact neighbour search up to this many faces, approximate above."},
    )
    nprobe: int = field(
        default=10, metadata={"help": "Cells searched per face by the approximate search."}
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
    with one_blas_thread():  # a threaded eigh of 512 x 512 is 10x slower on 2 busy cores
        _, vecs = np.linalg.eigh(cov)
    basis = vecs[:, ::-1][:, :dims].astype(np.float32)
    # projected in blocks: (x - mean) of a million faces would be a 2 GB temporary
    out = np.empty((n, dims), np.float32)
    shift = mean @ basis
    for s in range(0, n, 65536):
        np.subtract(x[s : s + 65536] @ basis, shift, out=out[s : s + 65536])
    return out


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
    nbr, dist = knn(
        y,
        k,
        brute_limit=params.brute_limit,
        nprobe=params.nprobe,
        seed=params.seed,
        n_jobs=params.n_jobs,
    )
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
        centroids = sum_by_label(y, comp, n_comp)
        centroids /= np.bincount(comp, minlength=n_comp)[:, None]
        cd = np.sqrt(sq_dists(centroids.astype(np.float32), centroids.astype(np.float32)))
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


def cluster_vectors(
    vectors: np.ndarray,
    groups: np.ndarray | None = None,
    params: ClusterParams | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    before: np.ndarray | None = None,
) -> ClusterResult:
    """Cluster unit embeddings; ``groups`` (photo ids) are cannot-link sets; ``before``:
    each face's cluster at the last grouping (0: none), kept where HDBSCAN leaves all
    its faces as noise but they still make a cluster (:func:`keep_previous_clusters`).

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
    labels = relabel(labels)
    stats["merged"] = merge_close_clusters(x, labels, groups, params.merge_ratio * threshold)
    stats["dissolved"], stats["split_parts"] = split_loose_clusters(
        x, labels, params.cohesion_ratio * threshold, params.min_cluster_size
    )
    labels = relabel(labels)
    if before is not None:
        stats["kept_previous"] = keep_previous_clusters(
            x, labels, np.asarray(before, np.int64), groups, params.trim_ratio * threshold,
            params.cohesion_ratio * threshold, params.min_cluster_size,
        )  # fmt: skip
        labels = relabel(labels)
    stats["paired"] = pair_noise(x, labels, groups, params.pair_ratio * threshold, threshold)
    labels = relabel(labels)
    stats["attached"] = attach_noise(x, labels, groups, params.attach_ratio * threshold)
    labels = relabel(labels)
    stats["post_s"] = time.perf_counter() - t
    return ClusterResult(labels, int(labels.max()) + 1, time.perf_counter() - start, stats)
