"""The centres that new faces are placed by, kept in the library between groupings.

Placing a thousand new faces into a grouped library of a million must not read a
million embeddings. So the library keeps, for the active model, each automatic
cluster's unit centroid (of its unconfirmed faces on present photos) and each named
person's representatives (at most 64 spread-out confirmed faces, as
:mod:`person_distances` picks them).

They stay fresh whoever changes the library: triggers installed with the first
centres log the cluster and person of every face whose cluster, person, photo status
or active-model embedding changes (a merge, a move, an undo, a regroup, a scan, another
process). :func:`sync` recomputes only the logged groups, from their members, inside
one write transaction; a switch of model rebuilds them all. Libraries that are never
placed into (small ones are regrouped instead) never get the triggers.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import numpy as np

from faceapp.engine.face_state import FaceState, load_state
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import EMBEDDING_DIM, blob_to_matrix
from faceapp.engine.person_distances import MAX_REPRESENTATIVES, representatives
from faceapp.engine.vecmath import normalize, sum_by_label

MODEL_KEY = "centres_model"  # meta: the model the kept centres belong to
THROUGH_KEY = "centres_through"  # meta: the last logged change folded into them
REBUILD_CHANGES = 200_000  # more logged changes than this: rebuild (a regroup changed all)

# A change to a face's membership logs its old and its new groups.
_LOG_OLD = (
    "INSERT INTO centre_changes(cluster_id, person_id) SELECT OLD.cluster_id, OLD.person_id"
    " WHERE COALESCE(OLD.cluster_id, OLD.person_id) IS NOT NULL;"
)
_LOG_NEW = _LOG_OLD.replace("OLD.", "NEW.")
_LOG_FACE = (  # the groups of the face an embedding row belongs to (active model only)
    "INSERT INTO centre_changes(cluster_id, person_id) SELECT cluster_id, person_id FROM faces"
    " WHERE id = {row}.face_id AND COALESCE(cluster_id, person_id) IS NOT NULL;"
)
_ACTIVE = "{row}.model_id = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'active_model')"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cluster_centres ("
    " cluster_id INTEGER PRIMARY KEY, size INTEGER NOT NULL, total BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS person_centres ("
    " person_id INTEGER PRIMARY KEY, face_ids TEXT NOT NULL, vectors BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS centre_changes ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, cluster_id INTEGER, person_id INTEGER)",
    "CREATE TRIGGER IF NOT EXISTS centres_face_update AFTER UPDATE OF cluster_id, person_id"
    " ON faces WHEN OLD.cluster_id IS NOT NEW.cluster_id OR OLD.person_id IS NOT NEW.person_id"
    f" BEGIN {_LOG_OLD} {_LOG_NEW} END",
    f"CREATE TRIGGER IF NOT EXISTS centres_face_delete AFTER DELETE ON faces BEGIN {_LOG_OLD} END",
    f"CREATE TRIGGER IF NOT EXISTS centres_face_insert AFTER INSERT ON faces BEGIN {_LOG_NEW} END",
    "CREATE TRIGGER IF NOT EXISTS centres_photo_status AFTER UPDATE OF status ON photos"
    " WHEN OLD.status IS NOT NEW.status BEGIN INSERT INTO centre_changes(cluster_id, person_id)"
    " SELECT cluster_id, person_id FROM faces WHERE photo_id = NEW.id"
    " AND COALESCE(cluster_id, person_id) IS NOT NULL; END",
    *(
        f"CREATE TRIGGER IF NOT EXISTS centres_embedding_{event.lower()} AFTER {event}"
        f" ON embeddings WHEN {_ACTIVE.format(row=row)} BEGIN {_LOG_FACE.format(row=row)} END"
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
    ),
)
_MEMBERS = (  # faces of present photos with an active-model embedding, by group
    "SELECT f.id, f.{col}, e.vector FROM faces f JOIN photos p ON p.id = f.photo_id"
    " JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?"
    " WHERE f.{col} IN (SELECT value FROM json_each(?)) AND p.status = 'ok' {extra}"
    " ORDER BY f.id"
)


@dataclass
class Centres:
    """The kept centres: cluster centroids and people's representative faces."""

    cluster_ids: np.ndarray  # int64 [k]
    centroids: np.ndarray  # float32 [k, 512]: unit centroids (of the kept sums)
    rep_person: np.ndarray  # int64 [r]: the person of each representative face
    rep_ids: np.ndarray  # int64 [r]: face ids
    rep_vectors: np.ndarray  # float32 [r, 512]


def last_change(c: sqlite3.Connection) -> int:
    """The sequence number of the last logged change."""
    row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'centre_changes'").fetchone()
    return int(row[0]) if row else 0


def _sums(clusters: np.ndarray, vectors: np.ndarray) -> list[tuple[int, int, bytes]]:
    """(cluster id, faces, sum of their unit vectors) rows: a sum can take faces in."""
    ids, index = np.unique(clusters, return_inverse=True)
    sums = sum_by_label(vectors, index, len(ids)).astype(np.float32)
    sizes = np.bincount(index, minlength=len(ids))
    return [
        (int(i), int(n), v.tobytes())
        for i, n, v in zip(ids.tolist(), sizes.tolist(), sums, strict=True)
    ]


def _cluster_rows(state: FaceState) -> list[tuple[int, int, bytes]]:
    members = np.flatnonzero((state.cluster > 0) & (state.person == 0))
    return _sums(state.cluster[members], state.vectors[members])


def _person_rows(state: FaceState) -> list[tuple[int, str, bytes]]:
    pids, reps = representatives(state, MAX_REPRESENTATIVES)
    return [
        (int(p), json.dumps(state.ids[rows].tolist()), state.vectors[rows].tobytes())
        for p, rows in zip(pids.tolist(), reps, strict=True)
    ]


def _write(
    c: sqlite3.Connection,
    clusters: list[tuple[int, int, bytes]],
    people: list[tuple[int, str, bytes]],
    through: int,
) -> None:
    c.executemany("INSERT OR REPLACE INTO cluster_centres VALUES (?, ?, ?)", clusters)
    c.executemany("INSERT OR REPLACE INTO person_centres VALUES (?, ?, ?)", people)
    c.execute("DELETE FROM centre_changes WHERE seq <= ?", (through,))
    c.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
        " value = excluded.value",
        (THROUGH_KEY, str(through)),
    )


def _install(lib: Library) -> None:
    with lib.transaction(durable=False) as c:
        for statement in SCHEMA:
            c.execute(statement)


def rebuild(lib: Library) -> None:
    """Compute every centre from the whole library (after a regroup, a model switch,
    or the first time); installs the change log the first time."""
    model = lib.active_model()
    if model is None:
        raise LibraryError("the library has no active model yet: scan a folder first")
    _install(lib)
    through = last_change(lib.conn)  # changes after this are folded in by the next sync
    state = load_state(lib)
    clusters, people = _cluster_rows(state), _person_rows(state)
    with lib.transaction(durable=False) as c:
        same_model = lib.get_meta(MODEL_KEY) == str(model.id)
        if same_model and int(lib.get_meta(THROUGH_KEY) or 0) > through:
            return  # another process folded in later changes meanwhile: theirs stand
        c.execute("DELETE FROM cluster_centres")
        c.execute("DELETE FROM person_centres")
        _write(c, clusters, people, through)
        c.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
            " value = excluded.value",
            (MODEL_KEY, str(model.id)),
        )


def _members(c: sqlite3.Connection, col: str, groups: list[int], model: int) -> FaceState:
    extra = "AND f.person_id IS NULL" if col == "cluster_id" else ""
    rows = c.execute(_MEMBERS.format(col=col, extra=extra), (model, json.dumps(groups))).fetchall()
    ids = np.array([r[0] for r in rows], np.int64)
    group = np.array([r[1] for r in rows], np.int64)
    vectors = blob_to_matrix([r[2] for r in rows])
    zero = np.zeros(len(ids), np.int64)
    if col == "cluster_id":
        return FaceState(ids, vectors, zero, zero, group)
    return FaceState(ids, vectors, zero, group, zero)


def sync(lib: Library) -> bool:
    """Fold the logged changes into the kept centres; False when there are none kept
    for the active model (or too many changes to fold: then :func:`rebuild`)."""
    model = lib.active_model()
    if model is None or lib.get_meta(MODEL_KEY) != str(model.id):
        return False
    with lib.transaction(durable=False) as c:
        through = last_change(c)
        count, clusters, people = c.execute(
            "SELECT COUNT(*), json_group_array(DISTINCT cluster_id),"
            " json_group_array(DISTINCT person_id) FROM centre_changes WHERE seq <= ?",
            (through,),
        ).fetchone()
        if count > REBUILD_CHANGES:
            return False
        if not count:
            return True
        clusters = [i for i in json.loads(clusters) if i is not None]
        people = [i for i in json.loads(people) if i is not None]
        for kind, ids in (("cluster", clusters), ("person", people)):
            c.execute(
                f"DELETE FROM {kind}_centres WHERE {kind}_id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            )
        _write(
            c,
            _cluster_rows(_members(c, "cluster_id", clusters, model.id)),
            _person_rows(_members(c, "person_id", people, model.id)),
            through,
        )
    return True


def fresh(lib: Library) -> Centres:
    """The kept centres, brought up to date (built the first time)."""
    if not sync(lib):
        rebuild(lib)
    c = lib.conn
    rows = c.execute("SELECT cluster_id, total FROM cluster_centres ORDER BY 1").fetchall()
    reps = c.execute("SELECT person_id, face_ids, vectors FROM person_centres").fetchall()
    rep_ids = [json.loads(r[1]) for r in reps]
    return Centres(
        np.array([r[0] for r in rows], np.int64),
        normalize(blob_to_matrix([r[1] for r in rows])),
        np.repeat(np.array([r[0] for r in reps], np.int64), [len(i) for i in rep_ids]),
        np.array([i for ids in rep_ids for i in ids], np.int64),
        np.frombuffer(b"".join(r[2] for r in reps), np.float32).reshape(-1, EMBEDDING_DIM),
    )


def joined(c: sqlite3.Connection, since: int, clusters: np.ndarray, vectors: np.ndarray) -> None:
    """In the transaction that put new faces (``vectors``) into ``clusters``: add them to
    the kept sums and drop the changes logged since ``since`` (this transaction's own),
    so a placement costs no rereading of the clusters it joined."""
    if not len(clusters):
        return
    rows = _sums(clusters, vectors)
    kept = dict(
        (r[0], r[1:])
        for r in c.execute(
            "SELECT cluster_id, size, total FROM cluster_centres"
            " WHERE cluster_id IN (SELECT value FROM json_each(?))",
            (json.dumps([r[0] for r in rows]),),
        )
    )
    for k, (cid, size, total) in enumerate(rows):
        if cid in kept:
            old_size, old_total = kept[cid]
            total = (
                np.frombuffer(old_total, np.float32) + np.frombuffer(total, np.float32)
            ).tobytes()
            rows[k] = (cid, size + old_size, total)
    c.executemany("INSERT OR REPLACE INTO cluster_centres VALUES (?, ?, ?)", rows)
    c.execute("DELETE FROM centre_changes WHERE seq > ?", (since,))
