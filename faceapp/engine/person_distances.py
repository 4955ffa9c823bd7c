"""Distances of unconfirmed faces to named people: the nearest person each face may
belong to, cached per library so the suggestion queue stays interactive."""

from __future__ import annotations

import json
import threading

import numpy as np

from faceapp.engine.birthdays import BEFORE_BIRTH_PAIRS
from faceapp.engine.face_state import FaceState
from faceapp.engine.library import Library
from faceapp.engine.vecmath import sq_dists

MAX_REPRESENTATIVES = 64  # confirmed faces per person that distances are measured to
_person_lock = threading.Lock()
_person_caches: dict[str, PersonDistances] = {}


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


def representatives(state: FaceState, max_reps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(person ids, rows of ``state`` per person): each named person's confirmed faces,
    at most ``max_reps`` spread-out ones, that distances to the person are measured to."""
    conf = np.flatnonzero(state.person > 0)
    order = conf[np.argsort(state.person[conf], kind="stable")]
    pids, starts = np.unique(state.person[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    reps: list[np.ndarray] = []
    for j in range(len(pids)):
        rows = order[bounds[j] : bounds[j + 1]]
        if len(rows) > max_reps:
            rows = rows[_farthest_points(state.vectors[rows], max_reps)]
        reps.append(rows)
    return pids, reps


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
        q_ids = state.ids[unconf]
        pids, reps = representatives(state, self.max_reps)
        keys = [tuple(sorted(state.ids[rows].tolist())) for rows in reps]
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
        kept = sorted(set(range(len(pids))) - set(fresh))
        if kept:
            kept_cols = np.array(kept, np.intp)
            old_cols = np.array([self.keys[int(pids[j])][0] for j in kept])
            out[np.ix_(np.flatnonzero(hit), kept_cols)] = self.matrix[np.ix_(pos[hit], old_cols)]
            miss = np.flatnonzero(~hit)
            if len(miss):
                out[np.ix_(miss, kept_cols)] = _min_sq_dist_grouped(
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
        d = sq_dists(q[s : s + block], reps, r_sq)
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


def rejection_pairs(lib: Library, face_ids: np.ndarray | None = None) -> np.ndarray:
    """[face_id, person_id] rows of the people a face must not be suggested for: "not this
    person" marks and people born after the photo was taken, of every face or only of
    ``face_ids``. For given faces also the people confirmed on another face of the same
    photo: a whole library's state holds those faces, :func:`nearest_people` sees them."""
    if face_ids is None:
        sql = "SELECT face_id, person_id FROM rejections UNION " + BEFORE_BIRTH_PAIRS
    else:
        some = " IN (SELECT value FROM json_each(:ids))"
        sql = (
            "SELECT face_id, person_id FROM rejections WHERE face_id" + some
            + " UNION " + BEFORE_BIRTH_PAIRS + " AND f.id" + some
            + " UNION SELECT n.id, o.person_id FROM faces n JOIN faces o"
            " ON o.photo_id = n.photo_id WHERE n.id" + some + " AND o.person_id IS NOT NULL"
        )  # fmt: skip
    ids = json.dumps([] if face_ids is None else face_ids.tolist())
    return np.array(lib.conn.execute(sql, {"ids": ids}).fetchall(), np.int64).reshape(-1, 2)


def library_nearest_people(lib: Library, state: FaceState) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_people` for a library's state, with the library's rejections and a
    per-library :class:`PersonDistances` cache shared by re-clustering and suggestions."""
    rejections = rejection_pairs(lib)
    key = str(lib.path.resolve())
    with _person_lock:
        if key not in _person_caches:  # one library at a time: the columns are large
            _person_caches.clear()
        cache = _person_caches.setdefault(key, PersonDistances(MAX_REPRESENTATIVES))
        return nearest_people(
            state, rejections, MAX_REPRESENTATIVES, cache=cache, model=lib.get_meta("active_model")
        )
