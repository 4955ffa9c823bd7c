"""Automatic clusters: HDBSCAN on the active model's embeddings, bound by the user's labels.

A face is confirmed (``faces.person_id``, set only by the user), in an automatic
cluster (``faces.cluster_id``) or Unknown (HDBSCAN noise). :func:`recluster` groups
the *unconfirmed* faces only, so re-clustering can never change a confirmed face or a
name. The confirmed faces act as anchors: an unconfirmed face close to a named
person's faces (a "likely" suggestion of the review queue, see ``hold_likely``) is
left in Unknown for that queue instead of forming a new cluster, so after a
rescan known people come back as suggestions and only the rest is clustered.

A large library that was grouped before is not regrouped after each scan: the new
faces are placed (:func:`update_groups`, :mod:`cluster_place`); a full regroup
(:func:`recluster`) stays one command or menu entry away.

The algorithm and its defaults: :mod:`faceapp.engine.clustering`. Cluster ids stay
stable across runs: new clusters are matched greedily to the old ones by how many
faces they share (:func:`match_cluster_ids`), and "not in this cluster" marks
(``cluster_rejections``) keep a face out of that cluster id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from faceapp.engine import backup, group_centres, review
from faceapp.engine.cluster_place import (
    PlaceSummary,
    groupable,
    mark_seen,
    place_new_faces,
    seen_through,
)
from faceapp.engine.cluster_steps import match_cluster_ids
from faceapp.engine.clustering import ClusterParams, cluster_vectors
from faceapp.engine.face_state import load_state
from faceapp.engine.library import Library, LibraryError

LARGE_LIBRARY = 50_000  # faces: from here new faces are placed after a scan, not regrouped


@dataclass(frozen=True)
class ClusterSummary:
    """What :func:`recluster` produced (the CLI prints the first four as JSON)."""

    clusters: int
    unknown: int  # unconfirmed faces in no cluster (suggested ones included)
    people: int
    seconds: float
    faces: int = 0
    suggested: int = 0  # of the unknown: held back as suggestions for a named person


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
    backup.backup_before(lib, "recluster")
    if progress:
        progress("loading embeddings")
    params = params or ClusterParams()
    threshold = lib.active_threshold()
    state = load_state(lib)
    unconf = np.flatnonzero(state.person == 0)
    held = np.zeros(len(unconf), bool)
    if params.hold_likely and (state.person > 0).any():
        if progress:
            progress("comparing with named people")
        held = review.likely(lib, state)
    grouped = ~held & groupable(lib, state.ids[unconf], params.min_face_px)
    rows = unconf[grouped]
    if progress:
        progress(f"clustering {len(rows)} faces")
    vectors = state.vectors if len(rows) == len(state) else state.vectors[rows]
    # a cluster of the last grouping keeps faces a run on few faces would leave as noise
    result = cluster_vectors(
        vectors, state.photo[rows], params, threshold=threshold, before=state.cluster[rows]
    )
    labels = np.full(len(unconf), -1, np.int64)  # held faces: Unknown (suggested or small)
    labels[grouped] = result.labels
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
    mark_seen(lib, int(state.ids.max()) if len(state) else 0)
    if len(state) >= LARGE_LIBRARY:  # new faces will be placed by these centres
        if progress:
            progress("keeping the group centres")
        group_centres.rebuild(lib)
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


def place_if_large(lib: Library, params: ClusterParams | None = None) -> PlaceSummary | None:
    """Place the faces a scan added when the library is large and was grouped before
    (None otherwise: a regroup is quick enough, or nothing was grouped yet)."""
    if lib.active_model() is None or seen_through(lib) == 0:
        return None
    faces = lib.conn.execute(
        "SELECT COUNT(*) FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.status = 'ok'"
    ).fetchone()[0]
    if faces < LARGE_LIBRARY:
        return None
    return place_new_faces(lib, params, threshold=lib.active_threshold())


def update_groups(
    lib: Library,
    params: ClusterParams | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> ClusterSummary:
    """After a scan: place the new faces in a large grouped library, else regroup."""
    start = time.perf_counter()
    if progress:
        progress("placing new faces")
    placed = place_if_large(lib, params)
    if placed is None:
        return recluster(lib, params, progress=progress)
    clusters, unknown, people = lib.conn.execute(
        "SELECT (SELECT COUNT(*) FROM clusters),"
        " (SELECT COUNT(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
        "  WHERE p.status = 'ok' AND f.person_id IS NULL AND f.cluster_id IS NULL),"
        " (SELECT COUNT(*) FROM people)"
    ).fetchone()
    return ClusterSummary(
        clusters=int(clusters),
        unknown=int(unknown),
        people=int(people),
        seconds=round(time.perf_counter() - start, 3),
        faces=placed.faces,
        suggested=placed.suggested,
    )
