"""Placing new faces into the existing clusters, without re-clustering everything.

After a scan adds a few thousand faces to a library of a million, a full regroup
would take minutes. Each new unconfirmed face instead goes where a regroup would
most likely put it: to a named person's suggestions when the review queue finds it
"likely" to be them (as :func:`cluster.recluster` holds it), else into the nearest
cluster when it is big enough to group (:func:`groupable`, as a regroup decides) and
within the trim distance of that cluster's centroid (``trim_ratio``: a
regroup's trim step would keep it there) and the cluster holds no face of the same
photo and the user never took it out of that cluster; otherwise it waits in Unknown
for the next full regroup. "New" means a face id above the highest one the last
regroup or placement saw (kept in the library's meta table).

Only the new faces' embeddings are read: the cluster centroids and the people's
representative faces are kept in the library (:mod:`group_centres`), fresh after
every merge, move or undo, and the nearest centroid is found with faiss.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from faceapp.engine import group_centres, review
from faceapp.engine.clustering import ClusterParams
from faceapp.engine.face_state import FaceState
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import blob_to_matrix
from faceapp.engine.neighbours import nearest
from faceapp.engine.person_distances import nearest_people, rejection_pairs

SEEN_KEY = "clustered_through_face"  # meta: highest face id the last grouping saw


@dataclass(frozen=True)
class PlaceSummary:
    """What :func:`place_new_faces` did with the faces new since the last grouping."""

    faces: int
    placed: int  # joined an existing cluster
    suggested: int  # left in Unknown as a suggestion for a named person
    unknown: int  # left in Unknown until the next regroup
    seconds: float


def mark_seen(lib: Library, top: int) -> None:
    """Record that every face up to id ``top`` has been grouped."""
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


def groupable(lib: Library, face_ids: np.ndarray, min_px: float) -> np.ndarray:
    """Which of ``face_ids`` may join a group: the box's mean side is at least
    ``min_px`` (:attr:`ClusterParams.min_face_px`). The one rule of a full regroup and
    of placement: smaller faces stay in their photos and in Unknown."""
    if not len(face_ids):
        return np.zeros(0, bool)
    rows = lib.conn.execute(  # from the lowest id on: placement reads only the new faces
        "SELECT id FROM faces WHERE id >= ? AND (x2 - x1 + y2 - y1) / 2 < ?",
        (int(np.min(face_ids)), float(min_px)),
    ).fetchall()
    return ~np.isin(face_ids, np.array([r[0] for r in rows], np.int64))


def _new_faces(lib: Library, model_id: int) -> tuple[FaceState, int]:
    """The unconfirmed, ungrouped faces (present photos) added since the last grouping,
    and the highest face id seen."""
    rows = lib.conn.execute(
        "SELECT f.id, f.photo_id, f.person_id IS NULL AND f.cluster_id IS NULL, e.vector"
        " FROM faces f JOIN photos p ON p.id = f.photo_id JOIN embeddings e"
        " ON e.face_id = f.id AND e.model_id = ? WHERE f.id > ? AND p.status = 'ok'"
        " ORDER BY f.id",
        (model_id, seen_through(lib)),
    ).fetchall()
    top = rows[-1][0] if rows else 0
    rows = [r for r in rows if r[2]]
    ids = np.array([r[0] for r in rows], np.int64)
    zero = np.zeros(len(ids), np.int64)
    photo = np.array([r[1] for r in rows], np.int64)
    return FaceState(ids, blob_to_matrix([r[3] for r in rows]), photo, zero, zero), top


def _held(lib: Library, new: FaceState, centres: group_centres.Centres) -> np.ndarray:
    """Which new faces Review would offer as "likely" for a named person, so they wait
    there (:func:`person_distances.nearest_people` against the kept representatives)."""
    if not len(new) or not len(centres.rep_ids):
        return np.zeros(len(new), bool)
    n, r = len(new), len(centres.rep_ids)
    state = FaceState(
        np.concatenate([new.ids, centres.rep_ids]),
        np.vstack([new.vectors, centres.rep_vectors]),
        np.concatenate([new.photo, np.full(r, -1, np.int64)]),  # same photo: in rejections
        np.concatenate([np.zeros(n, np.int64), centres.rep_person]),
        np.zeros(n + r, np.int64),
    )
    person, dist = nearest_people(state, rejection_pairs(lib, new.ids))
    return (person[:n] > 0) & review.is_likely(lib, dist[:n])


def _nearest_clusters(
    centres: group_centres.Centres, vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest cluster by unit centroid and the squared distance to it."""
    if not len(centres.cluster_ids) or not len(vectors):
        return np.zeros(len(vectors), np.int64), np.full(len(vectors), np.inf, np.float32)
    index, dist = nearest(centres.centroids, vectors)
    return centres.cluster_ids[index], dist


def place_new_faces(
    lib: Library, params: ClusterParams | None = None, *, threshold: float
) -> PlaceSummary:
    """Put the faces new since the last grouping into clusters or suggestions.

    Confirmed faces, names and existing clusters are never changed; only new faces
    that are in no cluster get a cluster id, in one transaction.
    """
    start = time.perf_counter()
    model = lib.active_model()
    if model is None:
        raise LibraryError("the library has no active model yet: scan a folder first")
    params = params or ClusterParams()
    centres = group_centres.fresh(lib)
    new, top = _new_faces(lib, model.id)
    held = _held(lib, new, centres) if params.hold_likely else np.zeros(len(new), bool)
    rows = np.flatnonzero(~held & groupable(lib, new.ids, params.min_face_px))
    cluster, dist = _nearest_clusters(centres, new.vectors[rows])
    # a regroup's trim step keeps members within trim_ratio * threshold of the centroid
    limit = (params.trim_ratio if params.trim_ratio > 0 else 1.0) * threshold
    order = np.argsort(dist, kind="stable")  # of two faces of one photo, the nearer wins
    order = order[dist[order] < limit]
    # the same-photo constraint, against the cluster and among the new faces themselves
    photos = json.dumps(np.unique(new.photo[rows]).tolist())
    taken = set(
        lib.conn.execute(
            "SELECT photo_id, cluster_id FROM faces WHERE cluster_id IS NOT NULL"
            " AND photo_id IN (SELECT value FROM json_each(?))",
            (photos,),
        ).fetchall()
    )
    rejected = set(
        lib.conn.execute(
            "SELECT face_id, cluster_id FROM cluster_rejections"
            " WHERE face_id IN (SELECT value FROM json_each(?))",
            (json.dumps(new.ids.tolist()),),
        ).fetchall()
    )
    updates: list[tuple[int, int]] = []
    for r, c in zip(rows[order].tolist(), cluster[order].tolist(), strict=True):
        key = (int(new.photo[r]), c)
        if key in taken or (int(new.ids[r]), c) in rejected:
            continue
        taken.add(key)
        updates.append((r, c))
    done = []
    with lib.transaction() as conn:
        since = group_centres.last_change(conn)
        for r, c in updates:  # the user may have named the cluster or the face meanwhile
            done += [r] * conn.execute(
                "UPDATE faces SET cluster_id = ? WHERE id = ? AND person_id IS NULL"
                " AND cluster_id IS NULL AND EXISTS (SELECT 1 FROM clusters WHERE id = ?)",
                (c, int(new.ids[r]), c),
            ).rowcount
        joined = dict(updates)
        group_centres.joined(
            conn, since, np.array([joined[r] for r in done], np.int64), new.vectors[done]
        )
    mark_seen(lib, top)
    return PlaceSummary(
        faces=len(new),
        placed=len(done),
        suggested=int(held.sum()),
        unknown=len(new) - len(done) - int(held.sum()),
        seconds=round(time.perf_counter() - start, 3),
    )
