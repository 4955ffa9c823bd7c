"""Placing new faces into the existing clusters, without re-clustering everything.

After a scan adds a few thousand faces to a library of a million, a full regroup
would take minutes. Each new unconfirmed face instead goes where a regroup would
most likely put it: to a named person's suggestions when the review queue finds it
"likely" to be them (as :func:`cluster.recluster` holds it), else into the nearest
cluster when it is within the trim distance of that cluster's centroid (``trim_ratio``: a
regroup's trim step would keep it there) and the cluster holds no face of the same
photo and the user never took it out of that cluster; otherwise it waits in Unknown
for the next full regroup. "New" means a face id above the highest one the last
regroup or placement saw (kept in the library's meta table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from faceapp.engine.clustering import ClusterParams
from faceapp.engine.face_state import FaceState, load_state
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.vecmath import normalize, sq_dists, sum_by_label

SEEN_KEY = "clustered_through_face"  # meta: highest face id the last grouping saw


@dataclass(frozen=True)
class PlaceSummary:
    """What :func:`place_new_faces` did with the faces new since the last grouping."""

    faces: int
    placed: int  # joined an existing cluster
    suggested: int  # left in Unknown as a suggestion for a named person
    unknown: int  # left in Unknown until the next regroup
    seconds: float


def mark_seen(lib: Library, state: FaceState) -> None:
    """Record that every face of ``state`` has been grouped."""
    top = int(state.ids.max()) if len(state) else 0
    lib.set_meta(SEEN_KEY, str(max(top, seen_through(lib))))


def seen_through(lib: Library) -> int:
    return int(lib.get_meta(SEEN_KEY) or 0)


def new_face_count(lib: Library) -> int:
    """Unconfirmed faces of present photos added since the last grouping."""
    return int(
        lib.conn.execute(
            "SELECT COUNT(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
            " WHERE p.status = 'ok' AND f.person_id IS NULL AND f.cluster_id IS NULL"
            " AND f.id > ?",
            (seen_through(lib),),
        ).fetchone()[0]
    )


def _nearest_clusters(
    state: FaceState, rows: np.ndarray, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """For ``rows``: the nearest cluster id by unit centroid and the squared distance."""
    members = np.flatnonzero((state.cluster > 0) & (state.person == 0))
    best_c = np.zeros(len(rows), np.int64)
    best_d = np.full(len(rows), np.inf, np.float32)
    if len(members) == 0 or len(rows) == 0:
        return best_c, best_d
    ids, index = np.unique(state.cluster[members], return_inverse=True)
    cent = normalize(sum_by_label(state.vectors[members], index, len(ids)))
    c_sq = np.einsum("ij,ij->i", cent, cent)
    for s in range(0, len(rows), block):
        d = sq_dists(state.vectors[rows[s : s + block]], cent, c_sq)
        j = np.argmin(d, axis=1)
        best_c[s : s + block] = ids[j]
        best_d[s : s + block] = d[np.arange(len(j)), j]
    return best_c, best_d


def place_new_faces(
    lib: Library, params: ClusterParams | None = None, *, threshold: float
) -> PlaceSummary:
    """Put the faces new since the last grouping into clusters or suggestions.

    Confirmed faces, names and existing clusters are never changed; only new faces
    that are in no cluster get a cluster id, in one transaction.
    """
    start = time.perf_counter()
    if lib.active_model() is None:
        raise LibraryError("the library has no active model yet: scan a folder first")
    params = params or ClusterParams()
    state = load_state(lib)
    new = np.flatnonzero(
        (state.person == 0) & (state.cluster == 0) & (state.ids > seen_through(lib))
    )
    held = np.zeros(len(new), bool)
    if len(new) and params.hold_likely and (state.person > 0).any():
        from faceapp.engine import review  # imports cluster, which imports this module

        unconf = np.flatnonzero(state.person == 0)
        held = review.likely(lib, state)[np.searchsorted(unconf, new)]
    rows = new[~held]
    cluster, dist = _nearest_clusters(state, rows)
    # a regroup's trim step keeps members within trim_ratio * threshold of the centroid
    limit = (params.trim_ratio if params.trim_ratio > 0 else 1.0) * threshold
    order = np.argsort(dist, kind="stable")  # of two faces of one photo, the nearer wins
    order = order[dist[order] < limit]
    # the same-photo constraint, against the cluster and among the new faces themselves
    members = (state.cluster > 0) & np.isin(state.photo, state.photo[rows])
    taken = set(zip(state.photo[members].tolist(), state.cluster[members].tolist(), strict=True))
    rejected = {
        (int(f), int(c))
        for f, c in lib.conn.execute("SELECT face_id, cluster_id FROM cluster_rejections")
    }
    updates: list[tuple[int, int, int]] = []
    for r, c in zip(rows[order].tolist(), cluster[order].tolist(), strict=True):
        key = (int(state.photo[r]), c)
        if key in taken or (int(state.ids[r]), c) in rejected:
            continue
        taken.add(key)
        updates.append((c, int(state.ids[r]), c))
    with lib.transaction() as conn:  # the user may have named a cluster meanwhile
        conn.executemany(
            "UPDATE faces SET cluster_id = ? WHERE id = ? AND person_id IS NULL"
            " AND cluster_id IS NULL AND EXISTS (SELECT 1 FROM clusters WHERE id = ?)",
            updates,
        )
    mark_seen(lib, state)
    return PlaceSummary(
        faces=len(new),
        placed=len(updates),
        suggested=int(held.sum()),
        unknown=len(new) - len(updates) - int(held.sum()),
        seconds=round(time.perf_counter() - start, 3),
    )
