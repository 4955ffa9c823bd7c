"""Small faces compared with named people at their own resolution.

A face of 12-19 px is embedded from a crop upscaled eight times or more: its
embedding is far from every sharp face, its own person's included, so the review
queue could only call it "unsure" and often named the wrong person first. Blurring
the other side the same way makes the two comparable: each of a candidate
person's nearest confirmed faces is shrunk to the small face's resolution and
enlarged again (as the scan enlarged the small face), embedded, and the small face's
distance to the person is the least distance to those. On bench/album_effort.py's
album this put the right person first for every face under 20 px of a named person
(2 of 10 had the wrong one first before) and at 0.32-0.86 instead of 0.74-1.26.

The measurements need the embedder, so they are made where the app has it, before
the review queue is read (:func:`update`: the GUI's Review in its worker,
``faceapp review`` / ``accept-likely``), and kept in ``small_matches`` so that every
later reading of the queue, on any thread or process, uses them
(:func:`apply`). A measurement is used only while the faces it was measured to are
still that person's; "not this person", a same-photo face and birthdays rule a
person out as for any suggestion.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import numpy as np
from PIL import Image

from faceapp.engine.clustering import ClusterParams
from faceapp.engine.face_state import FaceState, load_state
from faceapp.engine.library import Library
from faceapp.engine.person_distances import rejection_pairs
from faceapp.engine.progress import emit
from faceapp.engine.vecmath import sq_dists

# faces too small to group by default (mean box side under min_face_px) are re-measured
SMALL_PX = ClusterParams().min_face_px
CANDIDATES = 5  # nearest named people (by the plain distance) measured again
PER_PERSON = 8  # of each, the confirmed faces nearest the small face
CHUNK = 128  # small faces measured and kept per transaction (bounded memory, cancel)
EMBED_BATCH = 256  # degraded crops read and embedded at once
VECTOR_CACHE = 50_000  # degraded copies' embeddings kept across chunks (2 KiB each)
CROP = 160
# Confidence of a measured distance: a logistic curve of its own, fitted on LFW small
# faces (python bench/review_small_lfw.py --fit), as fractions of the threshold. Blurring
# both sides brings strangers nearer too, so the plain curve would call them "likely".
SMALL_MID_RATIO = 0.525
SMALL_SCALE_RATIO = 0.093


def _small_rows(lib: Library, state: FaceState) -> np.ndarray:
    """Rows of ``state``: unconfirmed faces under SMALL_PX."""
    small = {
        r[0]
        for r in lib.conn.execute(
            "SELECT id FROM faces WHERE person_id IS NULL AND (x2 - x1 + y2 - y1) / 2 < ?",
            (SMALL_PX,),
        )
    }
    return np.flatnonzero((state.person == 0) & np.isin(state.ids, list(small)))


def _ruled_out(lib: Library, state: FaceState, rows: np.ndarray) -> set[tuple[int, int]]:
    """(face, person) pairs no suggestion may make for these rows' faces ("not this
    person", born after the photo, a face of the same photo confirmed for them)."""
    return {(int(f), int(p)) for f, p in rejection_pairs(lib, state.ids[rows]).tolist()}


Pair = tuple[int, int, tuple[int, ...]]  # (small face, person, that person's faces compared)

_plan_lock = threading.Lock()
_plan_cache: dict[str, tuple[tuple, list[Pair]]] = {}  # library path -> (signature, plan)


def _plan(lib: Library, state: FaceState, block: int = 256) -> list[Pair]:
    """(face, person, that person's faces to compare) for each small face and each of
    its CANDIDATES nearest allowed people (in blocks of faces: one distance matrix of
    a block against the confirmed faces, grouped by person)."""
    rows = _small_rows(lib, state)
    conf = np.flatnonzero(state.person > 0)
    if not len(rows) or not len(conf):
        return []
    conf = conf[np.argsort(state.person[conf], kind="stable")]
    pids, starts = np.unique(state.person[conf], return_index=True)
    ends = np.append(starts[1:], len(conf))
    col = {int(p): j for j, p in enumerate(pids.tolist())}
    ruled: dict[int, list[int]] = {}
    for f, p in _ruled_out(lib, state, rows):
        if p in col:
            ruled.setdefault(f, []).append(col[p])
    conf_v = state.vectors[conf]  # once, not per block
    conf_sq = np.einsum("ij,ij->i", conf_v, conf_v)
    conf_ids = state.ids[conf]
    out = []
    for b in range(0, len(rows), block):
        chunk = rows[b : b + block]
        d = sq_dists(state.vectors[chunk], conf_v, conf_sq)
        per_person = np.minimum.reduceat(d, starts, axis=1)
        for i, r in enumerate(chunk.tolist()):
            face = int(state.ids[r])
            per_person[i, ruled.get(face, [])] = np.inf
            near = np.argsort(per_person[i], kind="stable")[:CANDIDATES]
            for j in near[np.isfinite(per_person[i, near])].tolist():
                lo, hi = int(starts[j]), int(ends[j])
                pick = lo + np.argsort(d[i, lo:hi], kind="stable")[:PER_PERSON]
                compared = tuple(sorted(conf_ids[pick].tolist()))
                out.append((face, int(pids[j]), compared))
    return out


def _signature(lib: Library) -> tuple:
    """Changes whenever the plan may: the model, any labelling operation (names, moves,
    "not this person", birth dates: all in the oplog), faces added or removed, photos
    gone missing or back (their faces leave or rejoin the library's state)."""
    q = lib.conn.execute
    return (
        lib.get_meta("active_model"),
        *q("SELECT IFNULL(MAX(id), 0), SUM(state = 'done') FROM oplog").fetchone(),
        *q("SELECT COUNT(*), IFNULL(MAX(id), 0), IFNULL(SUM(person_id), 0) FROM faces").fetchone(),
        *q("SELECT COUNT(*), IFNULL(SUM(id), 0) FROM photos WHERE status = 'ok'").fetchone(),
        *q("SELECT COUNT(*) FROM rejections").fetchone(),
    )


def _cached_plan(lib: Library) -> list[Pair]:
    """:func:`_plan`, computed once per state of the library (a Review refresh asks
    twice: :func:`pending`, then :func:`update`)."""
    sig, key = _signature(lib), str(lib.path.resolve())
    with _plan_lock:
        hit = _plan_cache.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
    plan = _plan(lib, load_state(lib))
    with _plan_lock:
        _plan_cache.clear()  # one library at a time
        _plan_cache[key] = (sig, plan)
    return plan


def _stored(lib: Library, model_id: int) -> dict[tuple[int, int], tuple[float, tuple]]:
    return {
        (f, p): (d, tuple(json.loads(c)))
        for f, p, d, c in lib.conn.execute(
            "SELECT face_id, person_id, distance, compared FROM small_matches WHERE model_id = ?",
            (model_id,),
        )
    }


def to_measure(lib: Library) -> list[Pair]:
    """The measurements :func:`update` would make: planned ones not stored, or stored
    against other faces than the person's nearest now (no network needed to ask)."""
    model = lib.active_model()
    if model is None:
        return []
    stored = _stored(lib, model.id)
    return [(f, p, c) for f, p, c in _cached_plan(lib) if stored.get((f, p), (0, None))[1] != c]


def pending(lib: Library) -> int:
    """How many (small face, person) measurements :func:`update` would make."""
    return len(to_measure(lib))


def _box_sides(lib: Library, face_ids: list[int]) -> dict[int, float]:
    marks = json.dumps(sorted(set(face_ids)))
    return dict(
        lib.conn.execute(
            "SELECT id, (x2 - x1 + y2 - y1) / 2 FROM faces WHERE id IN"
            " (SELECT value FROM json_each(?))",
            (marks,),
        ).fetchall()
    )


def _side(scale: float) -> int:
    """The shrunk side of a 160 px crop, to 4 px steps so that small faces of about one
    size share their degraded copies."""
    return min(CROP, max(4, 4 * round(CROP * scale / 4)))


def degrade(crop: np.ndarray, side: int) -> np.ndarray:
    """A 160 px crop shrunk to ``side`` px and enlarged back to 160 px (as the scan
    enlarged the small face's own crop)."""
    if side >= CROP:
        return crop
    im = Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(im.resize((CROP, CROP), Image.Resampling.BILINEAR))


def _measure(
    lib: Library,
    state: FaceState,
    todo: list[Pair],
    embed: Callable[[np.ndarray], np.ndarray],
    cancel: Callable[[], bool] | None,
    vector_of: dict[tuple[int, int], np.ndarray],
) -> list[tuple[int, int, float, str]] | None:
    """(face, person, distance, compared as JSON) of these pairs; None when cancelled.
    Crops are read and embedded EMBED_BATCH at a time; ``vector_of``: degraded copies
    embedded before, by (face, side), kept for the next chunk."""
    from faceapp.engine.embed import load_crops

    faces = sorted({c for _, _, cs in todo for c in cs})
    sides = _box_sides(lib, [f for f, _, _ in todo] + faces)
    row_of = {int(f): i for i, f in enumerate(state.ids)}
    # a face deleted or gone missing since the plan: its pairs are left, not measured
    todo = [
        (f, p, cs) for f, p, cs in todo if f in row_of and f in sides and set(cs) <= sides.keys()
    ]
    keys = {(c, _side(sides[f] / max(sides[c], 1e-6))) for f, _, cs in todo for c in cs}
    order = sorted(keys - vector_of.keys())
    for b in range(0, len(order), EMBED_BATCH):
        if cancel is not None and cancel():
            return None
        batch = order[b : b + EMBED_BATCH]
        ids = sorted({c for c, _ in batch})
        crops = dict(zip(ids, load_crops(lib, ids), strict=True))
        vectors = embed(np.stack([degrade(crops[c], side) for c, side in batch]))
        vector_of.update(zip(batch, vectors, strict=True))
    results = []
    for f, p, cs in todo:
        mine = np.stack([vector_of[c, _side(sides[f] / max(sides[c], 1e-6))] for c in cs])
        d = ((mine - state.vectors[row_of[f]]) ** 2).sum(axis=1)
        results.append((f, p, float(d.min()), json.dumps(list(cs))))
    return results


def update(
    lib: Library,
    embed: Callable[[np.ndarray], np.ndarray],
    model_id: int,
    *,
    todo: list[Pair] | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[tuple[int, int]], None] | None = None,
) -> int:
    """Measure the small faces not measured yet against their candidate people and
    keep the results; returns how many (face, person) pairs were measured.

    ``embed``: the embedder of model version ``model_id``; nothing is written once the
    library's active model is another. ``todo``: :func:`to_measure` when the caller
    has it. Small faces are measured CHUNK at a time, each chunk kept in its own
    transaction, so memory stays bounded, and ``cancel()`` (polled between batches)
    loses at most one chunk's work. ``progress((small faces done, of))``."""
    if _active_id(lib) != model_id:
        return 0
    todo = to_measure(lib) if todo is None else todo
    by_face: dict[int, list[Pair]] = {}
    for pair in todo:
        by_face.setdefault(pair[0], []).append(pair)
    sides = _box_sides(lib, list(by_face))
    faces = sorted(by_face.keys() & sides.keys(), key=lambda f: (sides[f], f))  # a chunk of
    # one size shares its degraded copies; a face deleted since the plan is left out
    vector_of: dict[tuple[int, int], np.ndarray] = {}
    state = load_state(lib)
    done = 0
    for s in range(0, len(faces), CHUNK):
        part = [pair for f in faces[s : s + CHUNK] for pair in by_face[f]]
        if len(vector_of) > VECTOR_CACHE:
            vector_of.clear()
        results = _measure(lib, state, part, embed, cancel, vector_of)
        if results is None:
            break
        with lib.transaction(durable=False) as c:  # derived data: not a user's edit
            if _active_id(lib) != model_id:  # switched while measuring: another network
                break
            c.executemany(
                "INSERT OR REPLACE INTO small_matches(face_id, model_id, person_id, distance,"
                " compared) SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?)",
                [(f, model_id, p, d, cs, f) for f, p, d, cs in results],
            )
        done += len(results)
        emit(progress, (min(s + CHUNK, len(faces)), len(faces)))
    return done


def _active_id(lib: Library) -> int | None:
    value = lib.get_meta("active_model")
    return int(value) if value else None


def apply(lib: Library, state: FaceState, person: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Replace, in place, the nearest person and distance of the small unconfirmed faces
    (``person``/``dist``: one entry per row of ``state`` with person 0) by their
    measurements at their own resolution, where there are any that still hold. Returns
    which entries were replaced (their confidence follows :data:`SMALL_MID_RATIO`)."""
    measured = np.zeros(len(person), bool)
    model = lib.active_model()
    if model is None:
        return measured
    stored = _stored(lib, model.id)
    if not stored:
        return measured
    unconf = np.flatnonzero(state.person == 0)
    pos = {int(state.ids[r]): i for i, r in enumerate(unconf)}
    owner = dict(zip(state.ids.tolist(), state.person.tolist(), strict=True))
    ruled = _ruled_out(lib, state, _small_rows(lib, state))
    best: dict[int, tuple[float, int]] = {}
    for (f, p), (d, compared) in stored.items():
        if f not in pos or (f, p) in ruled or any(owner.get(c) != p for c in compared):
            continue
        if d < best.get(f, (np.inf, 0))[0]:
            best[f] = (d, p)
    for f, (d, p) in best.items():
        person[pos[f]], dist[pos[f]], measured[pos[f]] = p, d, True
    return measured
