"""Suggestions: "Is this Anna?" for single faces, and clusters that look like a named person.

A face's nearest allowed person (never rejected, no confirmed face in the same
photo) is computed once per library state and cached. Imports no torch.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from faceapp.engine.cluster import model_threshold
from faceapp.engine.face_state import load_state
from faceapp.engine.library import Library
from faceapp.engine.person_distances import library_nearest_people

MAX_NAME = 200

# Suggestions, as fractions of the model's verification threshold (squared L2).
# That threshold is calibrated on balanced pairs (half of them the same person);
# in a library almost every face is someone else, so a face's nearest named person
# is under it by chance far too often: on LFW with 2% of the people named, 97% of
# the proposals under the threshold were wrong. bench/cluster_quality.py --suggest
# measures precision and coverage per cut-off and fits P(right | distance):
# a face is proposed when its distance is under SUGGEST_RATIO * threshold
# (precision 0.70-0.99, coverage 0.76-0.98 across the simulated users) ...
SUGGEST_RATIO = 0.65
# ... with confidence 1 / (1 + exp((d - MID * thr) / (SCALE * thr))), the logistic
# fits giving MID 0.56-0.68 and SCALE 0.03-0.05.
CONFIDENCE_MID = 0.6
CONFIDENCE_SCALE = 0.04
# a cluster is suggested as a person when at least this share of its faces are
SUGGEST_CLUSTER_SHARE = 0.5


@dataclass(frozen=True)
class Suggestion:
    """ "Is this <person_name>?" for one unconfirmed face."""

    face_id: int
    person_id: int
    person_name: str
    distance: float  # squared L2 to the person's nearest confirmed face
    confidence: float  # 0..1, 0.5 at the model's threshold


@dataclass(frozen=True)
class ClusterSuggestion:
    """An unnamed cluster that mostly looks like a named person."""

    cluster_id: int
    person_id: int
    person_name: str
    matching: int  # faces of the cluster whose nearest person this is, under threshold
    count: int
    distance: float  # median distance of the matching faces
    confidence: float


@dataclass
class _Nearest:
    face_ids: np.ndarray
    cluster: np.ndarray
    person: np.ndarray  # nearest allowed person, 0 = none
    distance: np.ndarray


_nearest_lock = threading.Lock()
_nearest_cache: dict[str, tuple[tuple, _Nearest]] = {}


def _signature(lib: Library) -> tuple:
    q = lib.conn.execute
    model = lib.get_meta("active_model")
    faces = q(
        "SELECT COUNT(*), IFNULL(MAX(id), 0), IFNULL(SUM(person_id), 0),"
        " IFNULL(SUM(cluster_id), 0) FROM faces"
    ).fetchone()
    ops = q("SELECT IFNULL(MAX(id), 0), SUM(state = 'done') FROM oplog").fetchone()
    photos = q("SELECT COUNT(*), SUM(status = 'ok') FROM photos").fetchone()
    rej = q("SELECT COUNT(*), IFNULL(SUM(face_id * 31 + person_id), 0) FROM rejections").fetchone()
    return (model, *faces, *ops, *photos, *rej)


def _nearest(lib: Library) -> tuple[_Nearest, float]:
    """Nearest allowed person of every unconfirmed face; cached until the library changes.

    One lock per process: two threads asking at once compute once.
    """
    threshold = model_threshold(lib)
    key = str(lib.path.resolve())
    with _nearest_lock:
        sig = _signature(lib)
        hit = _nearest_cache.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1], threshold
        state = load_state(lib)
        person, dist = library_nearest_people(lib, state)
        if key not in _nearest_cache:  # one library at a time
            _nearest_cache.clear()
        unconf = state.person == 0
        result = _Nearest(state.ids[unconf], state.cluster[unconf], person, dist)
        _nearest_cache[key] = (sig, result)
    return result, threshold


def confidence(distance: float, threshold: float) -> float:
    """Estimated probability that a face is its nearest named person (fitted on LFW):
    0.5 at ``CONFIDENCE_MID * threshold``."""
    z = (distance - CONFIDENCE_MID * threshold) / (CONFIDENCE_SCALE * threshold)
    return 1.0 / (1.0 + math.exp(min(z, 50.0)))


def _names(lib: Library) -> dict[int, str]:
    return dict(lib.conn.execute("SELECT id, name FROM people").fetchall())


def suggestions(lib: Library, limit: int | None = None) -> list[Suggestion]:
    """ "Is this X?" for unconfirmed faces near a named person, most uncertain first.

    X is the nearest person (squared L2 to their nearest confirmed face) that the
    face was never rejected from and that has no confirmed face in the same photo;
    only distances under ``SUGGEST_RATIO`` times the model's threshold are proposed.
    "Most uncertain" is the confidence nearest 0.5.
    """
    near, threshold = _nearest(lib)
    ok = (near.person > 0) & (near.distance < SUGGEST_RATIO * threshold)
    idx = np.flatnonzero(ok)
    mid = CONFIDENCE_MID * threshold
    order = idx[np.lexsort((near.face_ids[idx], np.abs(near.distance[idx] - mid)))]
    if limit is not None:
        order = order[: max(int(limit), 0)]
    names = _names(lib)
    dist = near.distance[order].astype(np.float64)
    z = (dist - mid) / (CONFIDENCE_SCALE * threshold)
    conf = 1.0 / (1.0 + np.exp(np.minimum(z, 50.0)))
    return [
        Suggestion(int(f), int(p), names[int(p)], round(float(d), 4), float(c))
        for f, p, d, c in zip(near.face_ids[order], near.person[order], dist, conf, strict=True)
        if int(p) in names
    ]


def cluster_suggestions(lib: Library) -> list[ClusterSuggestion]:
    """Unnamed clusters whose faces are mostly (``SUGGEST_CLUSTER_SHARE``) suggested
    for one named person, largest first.

    Accepting one is :func:`merge` of ``('cluster', id)`` into ``('person', id)``,
    which leaves out rejected and same-photo faces.
    """
    near, threshold = _nearest(lib)
    names = _names(lib)
    out = []
    in_cluster = near.cluster > 0
    for cid in np.unique(near.cluster[in_cluster]):
        rows = np.flatnonzero(near.cluster == cid)
        close = rows[(near.person[rows] > 0) & (near.distance[rows] < SUGGEST_RATIO * threshold)]
        if len(close) == 0:
            continue
        persons, counts = np.unique(near.person[close], return_counts=True)
        best = int(np.argmax(counts))
        pid, matching = int(persons[best]), int(counts[best])
        if matching < SUGGEST_CLUSTER_SHARE * len(rows) or pid not in names:
            continue
        d = float(np.median(near.distance[close][near.person[close] == pid]))
        out.append(
            ClusterSuggestion(
                int(cid),
                pid,
                names[pid],
                matching,
                len(rows),
                round(d, 4),
                confidence(d, threshold),
            )
        )
    out.sort(key=lambda s: (-s.count, s.cluster_id))
    return out
