"""The review queue: "Is this Anna?" up to the verification threshold, with a
confidence that means something.

Confidence is P(the face is its nearest named person | squared distance d to that
person's nearest confirmed face), a logistic curve ``1 / (1 + exp((d - mid) / scale))``:

* fitted on the user's own answers once there are enough of them near the
  decision (:func:`calibrate`): for each confirmed face, its distance to the nearest other
  face of the same person (a "same" example) and to the nearest face of any other
  person (a "different" example), plus every "not this person" mark (a hard
  "different" example) - the same statistic the suggestions use;
* otherwise the curve fitted on LFW, shipped as ``LFW_MID_RATIO`` /
  ``LFW_SCALE_RATIO`` (fractions of the model threshold, so they follow a fine-tuned
  model's recalibrated threshold). Command that produced them:
  ``python bench/review_lfw.py --fit``.

A suggestion at confidence >= ``LIKELY`` is "likely" (one click accepts them all);
below it "unsure", and so is a face that naming this person's cluster left out as not
fitting (:func:`naming.set_apart`). The queue lists the most uncertain first: confidence
nearest the likely/unsure boundary.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from faceapp.engine import naming, people, small_match
from faceapp.engine.face_state import FaceState, load_state
from faceapp.engine.library import Library
from faceapp.engine.oplog import Changes, OpChanges, commit
from faceapp.engine.person_distances import library_nearest_people
from faceapp.engine.vecmath import sq_dists

REVIEW_RATIO = 1.0  # faces are proposed up to this fraction of the verification threshold
LIKELY = 0.8  # confidence from which a suggestion is "likely"
# Logistic fit on LFW (python bench/review_lfw.py --fit), as fractions of the threshold.
LFW_MID_RATIO = 0.657
LFW_SCALE_RATIO = 0.052
# "same" and "different" examples each, between CAL_BAND x the threshold, before the
# user's own fit replaces LFW's: a library of well-clustered people has plenty of
# near-duplicate "same" pairs, which say nothing about the faces the queue holds.
MIN_EXAMPLES = 30
CAL_BAND = (0.4, 1.0)
MAX_CALIBRATION_FACES = 3000  # confirmed faces sampled for the fit (cost is quadratic)
# a cluster is proposed as a person when at least this share of its faces point to them
CLUSTER_SHARE = 0.5
# ... and the median confidence of those faces is at least CLUSTER_FLOOR: under it the
# answer is a near-certain no. python bench/review_questions.py (album_effort's album):
# the 65 questions whose answer is yes had 0.19-0.9999, 4 of the 6 whose answer is no
# 0.009-0.05 (the others 0.51, 0.86); in a 64-photo trial album, 8 "no" had 0.004-0.023.
CLUSTER_FLOOR = 0.1


@dataclass(frozen=True)
class Calibration:
    mid: float  # squared L2 where confidence is 0.5
    scale: float
    source: str  # 'library' (the user's confirmed pairs) or 'lfw'
    examples: int = 0

    def confidence(self, d: np.ndarray | float) -> np.ndarray:
        z = (np.asarray(d, np.float64) - self.mid) / self.scale
        return 1.0 / (1.0 + np.exp(np.minimum(z, 50.0)))


@dataclass(frozen=True)
class ReviewItem:
    """ "Is this <name>?" for one unconfirmed face."""

    face_id: int
    person_id: int
    person_name: str
    distance: float
    confidence: float
    set_apart: bool = False  # naming this person's cluster left the face out as not fitting

    @property
    def label(self) -> str:
        return "likely" if self.confidence >= LIKELY and not self.set_apart else "unsure"


@dataclass(frozen=True)
class ClusterReview:
    """ "5 faces of Cluster 7 look like Anna: merge?" """

    cluster_id: int
    person_id: int
    person_name: str
    matching: int
    count: int
    confidence: float  # median confidence of the matching faces

    @property
    def text(self) -> str:
        verb = "looks" if self.matching == 1 else "look"
        return (
            f"{people._plural(self.matching, 'face')} of Cluster {self.cluster_id}"
            f" {verb} like {self.person_name}"
        )


def fit_logistic(d: np.ndarray, same: np.ndarray) -> tuple[float, float] | None:
    """(mid, scale) of P(same | d) = 1 / (1 + exp((d - mid) / scale)); None when the data
    do not give a decreasing curve."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(same, bool)
    if y.all() or not y.any():
        return None
    model = LogisticRegression(C=100.0).fit(np.asarray(d, np.float64)[:, None], y)
    w, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if w >= 0:
        return None
    return -b / w, -1.0 / w


def calibration_examples(state: FaceState, rejections: np.ndarray, seed: int = 0):
    """(distances, same) examples from confirmed faces and "not this person" marks."""
    conf = np.flatnonzero(state.person > 0)
    if len(conf) > MAX_CALIBRATION_FACES:
        conf = np.sort(np.random.default_rng(seed).choice(conf, MAX_CALIBRATION_FACES, False))
    x = state.vectors[conf]
    who = state.person[conf]
    d = sq_dists(x, x)
    np.fill_diagonal(d, np.inf)
    same_mask = who[:, None] == who[None, :]
    d_same = np.where(same_mask, d, np.inf).min(axis=1)
    d_diff = np.where(same_mask, np.inf, d).min(axis=1)
    dist = [d_same[np.isfinite(d_same)], d_diff[np.isfinite(d_diff)]]
    same = [np.ones(len(dist[0]), bool), np.zeros(len(dist[1]), bool)]
    if len(rejections):
        row_of = {int(f): i for i, f in enumerate(state.ids)}
        rows = [(row_of[int(f)], int(p)) for f, p in rejections if int(f) in row_of]
        for r, p in rows:
            mine = conf[who == p]
            if len(mine):
                dr = ((state.vectors[mine] - state.vectors[r]) ** 2).sum(axis=1).min()
                dist.append(np.array([dr]))
                same.append(np.zeros(1, bool))
    return np.concatenate(dist), np.concatenate(same)


_cal_lock = threading.Lock()
_cal_cache: dict[str, tuple[tuple, Calibration]] = {}


def lfw_calibration(threshold: float) -> Calibration:
    """The curve fitted on LFW, for a model with this verification threshold."""
    return Calibration(LFW_MID_RATIO * threshold, LFW_SCALE_RATIO * threshold, "lfw")


def calibrate(lib: Library) -> Calibration:
    """The confidence curve for this library (its users' answers, else LFW's); cached
    until the labels change."""
    threshold = lib.active_threshold()
    fallback = lfw_calibration(threshold)
    q = lib.conn.execute
    sig = (
        lib.get_meta("active_model"),
        *q("SELECT IFNULL(MAX(id), 0), SUM(state = 'done') FROM oplog").fetchone(),
        *q("SELECT COUNT(*), IFNULL(SUM(person_id), 0) FROM faces").fetchone(),
    )
    key = str(lib.path.resolve())
    with _cal_lock:
        hit = _cal_cache.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
    state = load_state(lib)
    rejections = np.array(q("SELECT face_id, person_id FROM rejections").fetchall(), np.int64)
    result = fallback
    if (state.person > 0).sum() >= MIN_EXAMPLES:
        d, same = calibration_examples(state, rejections.reshape(-1, 2))
        band = (d >= CAL_BAND[0] * threshold) & (d <= CAL_BAND[1] * threshold)
        if (same & band).sum() >= MIN_EXAMPLES and (~same & band).sum() >= MIN_EXAMPLES:
            fit = fit_logistic(d, same)
            # a fit whose midpoint lies outside (0, threshold] is not believable
            if fit is not None and 0 < fit[0] <= threshold:
                result = Calibration(fit[0], fit[1], "library", len(d))
    with _cal_lock:
        _cal_cache.clear()
        _cal_cache[key] = (sig, result)
    return result


def _nearest(lib: Library) -> tuple[FaceState, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(state, rows of unconfirmed faces, their nearest allowed person, distance, whether
    the distance was measured at the face's own resolution (small faces))."""
    state = load_state(lib)
    person, dist = library_nearest_people(lib, state)
    measured = small_match.apply(lib, state, person, dist)
    return state, np.flatnonzero(state.person == 0), person, dist, measured


def small_calibration(threshold: float) -> Calibration:
    """The curve of distances measured at a small face's own resolution (LFW fit)."""
    mid, scale = small_match.SMALL_MID_RATIO, small_match.SMALL_SCALE_RATIO
    return Calibration(mid * threshold, scale * threshold, "lfw-small")


def _confidence(
    lib: Library, dist: np.ndarray, measured: np.ndarray, calibration: Calibration | None
) -> np.ndarray:
    """Confidence of each distance by its own curve: plain or measured small."""
    plain = (calibration or calibrate(lib)).confidence(dist)
    if not measured.any():
        return plain
    small = small_calibration(lib.active_threshold()).confidence(dist)
    return np.where(measured, small, plain)


def likely(lib: Library, state: FaceState) -> np.ndarray:
    """For each unconfirmed face (rows of ``state`` with person 0, in order): would the
    queue offer it as "likely" for a named person? Regrouping holds these faces back
    (:func:`faceapp.engine.cluster.recluster`): they wait here for one click instead
    of forming a new group of someone already named."""
    person, dist = library_nearest_people(lib, state)
    ok = (person > 0) & is_likely(lib, dist)
    if ok.any():
        ok &= ~_set_apart(lib, state.ids[state.person == 0], person)
    return ok


def _set_apart(lib: Library, face_ids: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Whether each face was set apart from that person (:func:`naming.set_apart`)."""
    apart = naming.set_apart(lib)
    pairs = zip(face_ids.tolist(), person.tolist(), strict=True)
    return np.array([pair in apart for pair in pairs], bool)


def is_likely(lib: Library, dist: np.ndarray) -> np.ndarray:
    """Whether a face at squared distance ``dist`` from its nearest person is "likely"."""
    ok = dist < REVIEW_RATIO * lib.active_threshold()
    if ok.any():
        ok &= calibrate(lib).confidence(dist) >= LIKELY
    return ok


def review(
    lib: Library, limit: int | None = None, calibration: Calibration | None = None
) -> list[ReviewItem]:
    """Suggestions for every unconfirmed face under the threshold from its nearest
    allowed person, most uncertain first (nearest ``LIKELY``, then by face id).
    ``calibration``: another curve than :func:`calibrate`'s (benchmarks compare them)."""
    state, rows, person, dist, measured = _nearest(lib)
    threshold = lib.active_threshold()
    ok = np.flatnonzero((person > 0) & (dist < REVIEW_RATIO * threshold))
    conf = _confidence(lib, dist[ok], measured[ok], calibration)
    order = np.lexsort((state.ids[rows[ok]], np.abs(conf - LIKELY)))
    if limit is not None:
        order = order[: max(int(limit), 0)]
    names = dict(lib.conn.execute("SELECT id, name FROM people").fetchall())
    apart = naming.set_apart(lib)
    out = []
    for i in order:
        fid, pid = int(state.ids[rows[ok[i]]]), int(person[ok[i]])
        if pid in names:
            d, c = round(float(dist[ok[i]]), 4), float(conf[i])
            out.append(ReviewItem(fid, pid, names[pid], d, c, (fid, pid) in apart))
    return out


def accept_likely(lib: Library) -> OpChanges | None:
    """Confirm every "likely" suggestion in one undoable step (None: there was none).
    Of two likely faces of one photo for one person the nearer wins; the other stays
    in the queue."""
    items = sorted(
        (s for s in review(lib) if s.label == "likely"), key=lambda s: (s.distance, s.face_id)
    )
    with lib.transaction() as c:
        ch = Changes()
        taken: set[tuple[int, int]] = set()
        names: set[str] = set()
        photos_of: dict[int, set[int]] = {}
        for s in items:
            row = c.execute(
                "SELECT photo_id, person_id, cluster_id FROM faces WHERE id = ?", (s.face_id,)
            ).fetchone()
            if row is None or row[1] is not None:
                continue  # confirmed (or gone) since the queue was read
            if s.person_id not in photos_of:
                photos_of[s.person_id] = set(people._person_photos(c, s.person_id))
            if row[0] in photos_of[s.person_id] or (row[0], s.person_id) in taken:
                continue
            taken.add((row[0], s.person_id))
            names.add(s.person_name)
            ch.face(s.face_id, (row[1], row[2]), (s.person_id, None))
        n = len(ch.faces)
        if n == 0:
            return None
        who = ", ".join(sorted(names)[:3]) + (" and others" if len(names) > 3 else "")
        text = f"Accepted {people._plural(n, 'likely suggestion')} ({who})"
        return commit(c, "confirm", text, ch)


def cluster_reviews(lib: Library) -> list[ClusterReview]:
    """Unnamed clusters of which at least ``CLUSTER_SHARE`` of the faces are suggested
    for one person, at a confidence of at least ``CLUSTER_FLOOR``, largest first (a
    face set apart from that person by naming does not count for them). Yes:
    :func:`naming.name_cluster` with that person (outliers go to review); No:
    :func:`naming.reject_cluster` (remembered)."""
    state, rows, person, dist, measured = _nearest(lib)
    threshold = lib.active_threshold()
    names = dict(lib.conn.execute("SELECT id, name FROM people").fetchall())
    counts_for = ~_set_apart(lib, state.ids[rows], person)
    cl = state.cluster[rows]
    out = []
    for cid in np.unique(cl[cl > 0]):
        mine = np.flatnonzero(cl == cid)
        ok = (person[mine] > 0) & (dist[mine] < REVIEW_RATIO * threshold) & counts_for[mine]
        near = mine[ok]
        if len(near) == 0:
            continue
        pids, counts = np.unique(person[near], return_counts=True)
        best = int(np.argmax(counts))
        pid, matching = int(pids[best]), int(counts[best])
        if matching < CLUSTER_SHARE * len(mine) or pid not in names:
            continue
        theirs = near[person[near] == pid]
        conf = float(np.median(_confidence(lib, dist[theirs], measured[theirs], None)))
        if conf < CLUSTER_FLOOR:
            continue  # a near-certain "no" is not worth asking
        out.append(ClusterReview(int(cid), pid, names[pid], matching, len(mine), conf))
    out.sort(key=lambda s: (-s.count, s.cluster_id))
    return out
