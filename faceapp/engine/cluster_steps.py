"""Steps after HDBSCAN: the same-photo constraint, trimming, merging, splitting
loose clusters, attaching noise, and stable cluster ids across runs. Each works on a
label array in place and says how many faces it moved."""

from __future__ import annotations

import numpy as np

from faceapp.engine.neighbours import knn
from faceapp.engine.vecmath import normalize, sq_dists, sum_by_label, topk_rows

MERGE_EXACT_LIMIT = 20_000  # clusters compared all against all up to this many
MERGE_NEIGHBOURS = 10  # above it: the nearest centroids of each centroid
PAIR_NEIGHBOURS = 2  # pair_noise: faces must be among each other's this many nearest


def relabel(labels: np.ndarray) -> np.ndarray:
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


def centroids(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return normalize(sum_by_label(x, labels, k))


def sq_to_centroid(
    x: np.ndarray, labels: np.ndarray, rows: np.ndarray, cent: np.ndarray, block: int = 65536
) -> np.ndarray:
    """Squared distance of each of ``rows`` to its cluster's centroid, in blocks (the
    difference of a million faces would be a 2 GB temporary)."""
    out = np.empty(len(rows), np.float32)
    for s in range(0, len(rows), block):
        r = rows[s : s + block]
        diff = x[r] - cent[labels[r]]
        out[s : s + block] = np.einsum("ij,ij->i", diff, diff)
    return out


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
    cent = centroids(x, labels, k)
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
    cent = centroids(x, labels, k)
    taken = {
        (int(g), int(c)) for g, c in zip(groups[labels >= 0], labels[labels >= 0], strict=True)
    }
    best: list[tuple[float, int, int]] = []
    for s in range(0, len(noise), block):
        idx = noise[s : s + block]
        d = sq_dists(x[idx], cent)
        top = min(4, k)
        ci, cv = topk_rows(d, top)
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
        cent = centroids(x, labels, k)
        members = np.flatnonzero(labels >= 0)
        far = members[sq_to_centroid(x, labels, members, cent) > max_sq]
        if len(far) == 0:
            break
        labels[far] = -1
    sizes = np.bincount(labels[labels >= 0], minlength=int(labels.max()) + 1)
    labels[(labels >= 0) & (sizes[np.maximum(labels, 0)] < min_size)] = -1
    return before - int((labels >= 0).sum())


def split_loose_clusters(
    x: np.ndarray, labels: np.ndarray, max_mean_sq: float, min_size: int
) -> tuple[int, int]:
    """Clusters whose members sit on average farther than ``max_mean_sq`` (squared L2)
    from their unit centroid are split; only the faces that fit no tight part go.

    Faces nobody could recognise (blurred, tiny, half hidden, a hand or a logo taken
    for a face) have embeddings that drift to a common region and form one large,
    loose "garbage" cluster; a real person's cluster is much tighter. A cluster can
    also be loose because it is mixed: a person with too few faces for a cluster of
    their own is hung by HDBSCAN on a look-alike's cluster (traced on an album: 5
    faces of one person and 3 of another, mean 0.597 against a cut-off of 0.531), and
    dissolving it would send the right faces to Unknown too. So the members are
    grouped again by average linkage, cut where the mean squared distance between two
    parts reaches ``2 * max_mean_sq`` (the pairwise distance of a cluster just at the
    cohesion limit); parts of at least ``min_size`` faces that are cohesive stay
    clusters, the rest become noise. Returns (faces sent to noise, parts kept).
    """
    if max_mean_sq <= 0 or labels.max() < 0:
        return 0, 0
    k = int(labels.max()) + 1
    cent = centroids(x, labels, k)
    members = np.flatnonzero(labels >= 0)
    sq = sq_to_centroid(x, labels, members, cent)
    sums = np.bincount(labels[members], weights=sq, minlength=k)
    mean = sums / np.maximum(np.bincount(labels[members], minlength=k), 1)
    removed = kept = 0
    next_label = k
    for c in np.flatnonzero(mean > max_mean_sq):
        rows = np.flatnonzero(labels == c)
        labels[rows] = -1
        for part in _tight_parts(x[rows], 2 * max_mean_sq):
            if len(part) < min_size or _mean_sq(x[rows[part]]) > max_mean_sq:
                continue
            labels[rows[part]] = next_label
            next_label += 1
            kept += 1
        removed += int((labels[rows] < 0).sum())
    return removed, kept


def keep_previous_clusters(
    x: np.ndarray,
    labels: np.ndarray,
    before: np.ndarray,
    groups: np.ndarray,
    max_sq: float,
    max_mean_sq: float,
    min_size: int,
) -> int:
    """Faces of a cluster the new run left wholly as noise stay together in it
    (``before``: each row's cluster at the last grouping, 0 for none) when they still
    make a cluster by the rules of a new one: one face per photo, none farther than
    ``max_sq`` from the centroid, cohesive (``max_mean_sq``), at least ``min_size``
    faces.

    HDBSCAN never returns the whole input as one cluster (``allow_single_cluster``
    off, right for a library of many people), so in a small library whose other
    people were named, the last unnamed person's faces were all noise after a
    rescan and the group the user had seen vanished. An old cluster some of whose
    faces the new run put into a cluster keeps nothing: its noise faces beside that
    cluster would be a second group of one person. Returns how many faces were kept.
    """
    taken = np.unique(before[(labels >= 0) & (before > 0)])
    rows = np.flatnonzero((labels < 0) & (before > 0) & ~np.isin(before, taken))
    if len(rows) < min_size:
        return 0
    xs = x[rows]
    part = np.unique(before[rows], return_inverse=True)[1].astype(np.int64).ravel()
    enforce_cannot_link(xs, part, groups[rows])
    trim_outliers(xs, part, max_sq, min_size)
    part = relabel(part)
    split_loose_clusters(xs, part, max_mean_sq, min_size)
    part = relabel(part)
    if part.max() < 0:  # every face trimmed or split off
        return 0
    sizes = np.bincount(part[part >= 0], minlength=int(part.max()) + 1)
    keep = (part >= 0) & (sizes[np.maximum(part, 0)] >= min_size)
    labels[rows[keep]] = int(labels.max()) + 1 + part[keep]
    return int(keep.sum())


def _tight_parts(x: np.ndarray, max_mean_pair_sq: float) -> list[np.ndarray]:
    """Groups of rows by average linkage on squared L2, cut at ``max_mean_pair_sq``."""
    if len(x) < 2:
        return [np.arange(len(x))]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    tree = linkage(pdist(x.astype(np.float64), "sqeuclidean"), method="average")
    part = fcluster(tree, max_mean_pair_sq, criterion="distance")
    return [np.flatnonzero(part == p) for p in np.unique(part)]


def _mean_sq(x: np.ndarray) -> float:
    """Mean squared L2 of the rows to their unit centroid."""
    c = normalize(x.sum(axis=0, keepdims=True))
    return float(((x - c) ** 2).sum(axis=1).mean())


def merge_close_clusters(
    x: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_sq: float
) -> int:
    """Merge clusters whose unit centroids are under ``max_sq`` apart and share no photo."""
    if max_sq <= 0 or labels.max() < 1:
        return 0
    k = int(labels.max()) + 1
    cent = centroids(x, labels, k)
    pairs: list[tuple[float, int, int]] = []
    if k <= MERGE_EXACT_LIMIT:
        for s in range(0, k, 2048):
            d = sq_dists(cent[s : s + 2048], cent)
            r, c = np.nonzero(d < max_sq)
            for a, b in zip(r + s, c, strict=True):
                if a < b:
                    pairs.append((float(d[a - s, b]), int(a), int(b)))
    else:  # many clusters: only each centroid's nearest others can be close enough
        nbr, dist = knn(cent, MERGE_NEIGHBOURS)
        sq = dist.astype(np.float64) ** 2
        r, c = np.nonzero(sq < max_sq)
        for a, b, v in zip(r, nbr[r, c], sq[r, c], strict=True):
            if a != b:
                pairs.append((float(v), int(min(a, b)), int(max(a, b))))
        pairs = sorted(set(pairs))
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
    for _, ca, cb in sorted(pairs):
        ra, rb = find(ca), find(cb)
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


def pair_noise(
    x: np.ndarray, labels: np.ndarray, groups: np.ndarray, max_sq: float, max_any_sq: float
) -> int:
    """Noise faces that are among each other's two nearest faces (of all faces,
    clustered or not) form groups of 2-3 when their mean squared distance is under
    ``max_sq`` and no two are ``max_any_sq`` (the threshold) apart or of one photo;
    the clusters found stay as they are.

    HDBSCAN needs ``min_cluster_size`` faces for a cluster, so a person with 2-3
    faces stayed in Unknown; a smaller minimum splits people with many faces. A face
    whose nearest faces are clustered is left alone (it may be that person's). Where
    three or more faces chain together but fail the test, each two that are each
    other's nearest and under ``max_sq`` still pair. Returns how many faces were grouped.
    """
    noise = np.flatnonzero(labels < 0)
    if max_sq <= 0 or len(noise) < 2 or len(x) < 3:
        return 0
    nbr, dist = knn(x, PAIR_NEIGHBOURS)
    sq = dist.astype(np.float64) ** 2
    near = {
        (int(i), int(j)): float(d)
        for i in noise
        for j, d in zip(nbr[i], sq[i], strict=True)
        if j != i and labels[j] < 0 and d < max_any_sq and groups[i] != groups[j]
    }
    parent = {int(i): int(i) for i in noise}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in near:
        if (j, i) in near:
            parent[find(i)] = find(j)
    parts: dict[int, list[int]] = {}
    for i in parent:
        parts.setdefault(find(i), []).append(i)
    next_label = int(labels.max()) + 1
    grouped = 0
    for rows in parts.values():
        if len(rows) < 2:
            continue
        pairs = [(a, b) for k, a in enumerate(rows) for b in rows[k + 1 :]]
        close = [near.get((a, b)) for a, b in pairs]
        whole = len(rows) <= 3 and all(
            d is not None and (b, a) in near for d, (a, b) in zip(close, pairs, strict=True)
        )
        if whole and np.mean([d for d in close if d is not None]) < max_sq:
            chosen = [rows]
        else:  # each two that are each other's nearest
            chosen = [
                [a, b]
                for a, b in pairs
                if nbr[a][0] == b and nbr[b][0] == a and near.get((a, b), max_sq) < max_sq
            ]
        for part in chosen:
            labels[part] = next_label
            next_label += 1
            grouped += len(part)
    return grouped
