"""Naming faces and groups: new people from any selection, and clusters named with care.

A cluster may hold a face that does not belong (single linkage lets a look-alike in,
and a rescan adds faces to unnamed clusters without asking). Before a cluster is
named, :func:`cluster_outliers` flags the faces that do not fit the rest of the
group; :func:`name_cluster` confirms only the faces that fit, and the others go back
to Unknown, where they come up in the review queue for the new person if they are
near them. Nothing here ever confirms a face the user did not name: a rescan only
adds suggestions.

Each operation is one transaction and one undo step (the op log of
:mod:`faceapp.engine.people`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceapp.engine import people
from faceapp.engine.album import PeopleError, cluster_exists, get_person
from faceapp.engine.face_state import load_state
from faceapp.engine.library import Library
from faceapp.engine.oplog import Changes, OpChanges, commit

NAMING_KINDS = ("name", "merge")  # the op log kinds of name_cluster

# A face of a cluster is an outlier when its squared distance to the unit centroid of
# the other *fitting* members is over OUTLIER_RATIO x the model's threshold: the faces
# found not to fit are left out of the centre and the check runs again until nothing
# changes, so two faces of someone else cannot pull the centre towards themselves
# (a first pass found one of two Roh Moo-hyun faces among 8 of Junichiro Koizumi, both
# at ~0.6; without them the centre puts both at ~0.7). Measured on the 34 clusters of
# bench/album_effort.py's album (270 genuine faces, 5 of someone else) and on groups
# built from it (each person with >= 5 faces plus 1 or 2 faces of the nearest other
# person: 254 genuine, 27 and 54 intruders), false flags per 100 genuine faces and
# intruders caught, one pass -> repeated: album 1.1 -> 1.5 (5/5 both), +1 intruder
# 4.7 -> 5.5 (27/27 both), +2 intruders 5.9 -> 5.5 (54/54 both); on 8 LFW photos of
# Koizumi with each pair of 32 of Roh, 670 -> 448 Roh faces missed of 992. 0.65 flags
# fewer genuine faces but misses the second intruder again.
OUTLIER_RATIO = 0.6


@dataclass(frozen=True)
class NameResult:
    """What naming did: the operation's changes, the person, whether it was created,
    how many faces were newly confirmed, and the faces left out for review."""

    changes: OpChanges
    person_id: int
    name: str
    created: bool
    moved: int
    to_review: tuple[int, ...] = ()

    @property
    def description(self) -> str:
        return self.changes.description


def _moved(c, face_ids: Sequence[int], person_id: int) -> int:
    rows = people._faces_by_id(c, face_ids)
    return sum(1 for r in rows if r[2] != person_id)


def move_to_name(
    lib: Library, face_ids: Sequence[int], name: str, *, create: bool = False
) -> NameResult:
    """Confirm faces for the person called ``name``; with ``create``, a new person of
    that name when nobody has it. Without ``create`` an unknown name is a PeopleError.
    One undo step either way (same rules as :func:`people.move_faces`)."""
    clean = people._clean_name(name)
    with lib.transaction() as c:
        existing = people._person_by_name(c, clean)
        if existing is None and not create:
            raise PeopleError(f"no person named {clean!r} (create one with --create)")
        if existing is None:
            changes = people.create_person(lib, clean, face_ids)
            pid = _new_person(changes)
            return NameResult(changes, pid, clean, True, len(people._faces_by_id(c, face_ids)))
        moved = _moved(c, face_ids, existing)
        changes = people.move_faces(lib, face_ids, existing)
        return NameResult(changes, existing, get_person(c, existing)[1], False, moved)


def _new_person(changes: OpChanges) -> int:
    if changes.person_id is None:  # create_person always names its person
        raise PeopleError("no person was created")
    return changes.person_id


def move_to_person(lib: Library, face_ids: Sequence[int], person_id: int) -> NameResult:
    """:func:`people.move_faces` with the same result shape as :func:`move_to_name`."""
    with lib.transaction() as c:
        pid, pname, _ = get_person(c, person_id)
        moved = _moved(c, face_ids, pid)
        return NameResult(people.move_faces(lib, face_ids, pid), pid, pname, False, moved)


def cluster_outliers(lib: Library, cluster_id: int) -> list[int]:
    """Faces of an unnamed cluster that do not fit the rest of it, farthest first.

    A face fits when it is within ``OUTLIER_RATIO`` x threshold of the unit centroid
    of the other fitting members (leave-one-out, and the misfits leave the centre, so
    stray faces cannot pull it to themselves). Clusters of two faces have no outliers
    (nothing to outvote).
    """
    state = load_state(lib)
    rows = np.flatnonzero((state.cluster == int(cluster_id)) & (state.person == 0))
    if len(rows) < 3:
        return []
    x = state.vectors[rows].astype(np.float64)
    limit = OUTLIER_RATIO * lib.active_threshold()
    fit = np.ones(len(rows), bool)
    for _ in range(len(rows)):
        d = _distance_to_the_others(x, fit)
        out = np.flatnonzero(d > limit)
        # never all of them: at least half the group must fit for "the group" to mean anything
        out = out[np.argsort(-d[out], kind="stable")][: (len(rows) - 1) // 2]
        now = np.ones(len(rows), bool)
        now[out] = False
        if (now == fit).all():
            break
        fit = now
    return [int(i) for i in state.ids[rows[out]]]


def _distance_to_the_others(x: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Squared distance of each row to the unit centroid of the fitting rows but itself."""
    others = x[fit].sum(axis=0)[None, :] - np.where(fit[:, None], x, 0.0)
    others /= np.maximum(np.linalg.norm(others, axis=1, keepdims=True), 1e-12)
    return ((x - others) ** 2).sum(axis=1)


def name_cluster(
    lib: Library,
    cluster_id: int,
    name: str | None = None,
    *,
    person_id: int | None = None,
    leave_out: Sequence[int] | None = None,
) -> NameResult:
    """Name a cluster (a new person, or the existing person of that name or id):
    its fitting faces are confirmed; the outliers (``leave_out``, by default
    :func:`cluster_outliers`) go to Unknown for review. One undo step."""
    if (name is None) == (person_id is None):
        raise ValueError("give a name or a person id")
    outliers = set(cluster_outliers(lib, cluster_id) if leave_out is None else leave_out)
    clean = people._clean_name(name) if name is not None else None
    with lib.transaction() as c:
        if not cluster_exists(c, cluster_id):
            raise PeopleError(f"no cluster {cluster_id}")
        ch = Changes()
        found = people._person_by_name(c, clean) if clean is not None else person_id
        created = found is None
        if found is None:
            pid = people._new_id(c, "people")
            pname = str(clean)
            ch.people.append([pid, None, [pname, 0, time.time()]])
        else:
            pid, pname, _ = get_person(c, int(found))
        faces = people._faces_where(c, "cluster_id = ? AND person_id IS NULL", (cluster_id,))
        fit = [f for f in faces if f[0] not in outliers]
        stray = [f for f in faces if f[0] in outliers]
        joined, refused, clashed = people._join_person(c, ch, fit, pid)
        for fid, _photo, person, cl in stray:
            ch.face(fid, (person, cl), (None, None))
        for (fid,) in c.execute(
            "SELECT face_id FROM cluster_rejections WHERE cluster_id = ?", (cluster_id,)
        ).fetchall():
            ch.crej_del.append([fid, cluster_id])
            ch.rej_add.append([fid, pid])
        people._drop_cluster(c, ch, cluster_id)
        verb = "Named" if created else "Merged"
        into = f"cluster {cluster_id} {'as' if created else 'into'} {pname}"
        review = f"; {people._plural(len(stray), 'face')} to review" if stray else ""
        text = (
            f"{verb} {into} ({people._plural(joined, 'face')})"
            f"{people._left_out(refused, clashed)}{review}"
        )
        changes = commit(c, "name" if created else "merge", text, ch, person_id=pid)
        return NameResult(changes, pid, pname, created, joined, tuple(sorted(f[0] for f in stray)))


def set_apart(lib: Library) -> set[tuple[int, int]]:
    """(face, person) pairs of faces a cluster's naming left out as not fitting that
    person: review offers them as "unsure" at most, since the user was told they may
    not be this person.

    Read from the op log (the operation's own record: an undone naming sets nothing
    apart; the last ``oplog.OPLOG_KEEP`` operations are kept).
    """
    out: set[tuple[int, int]] = set()
    marks = ",".join("?" * len(NAMING_KINDS))
    rows = lib.conn.execute(
        f"SELECT payload FROM oplog WHERE state = 'done' AND kind IN ({marks})", NAMING_KINDS
    ).fetchall()
    for (payload,) in rows:
        faces = Changes.from_json(payload).faces
        pids = {f[3] for f in faces if f[3] is not None}
        if len(pids) != 1:
            continue
        pid = pids.pop()
        out.update((f[0], pid) for f in faces if f[2] is not None and f[3:5] == [None, None])
    return out


def reject_cluster(lib: Library, cluster_id: int, person_id: int) -> OpChanges:
    """ "No" to "Cluster 7 looks like Anna": remembered as "not Anna" for each of its
    faces, so neither the cluster nor its faces are proposed for Anna again. The
    faces stay in the cluster. One undo step."""
    with lib.transaction() as c:
        if not cluster_exists(c, cluster_id):
            raise PeopleError(f"no cluster {cluster_id}")
        _, pname, _ = get_person(c, person_id)
        have = people._rejections_of(c, person_id)
        faces = people._faces_where(c, "cluster_id = ? AND person_id IS NULL", (cluster_id,))
        ch = Changes(rej_add=[[f[0], int(person_id)] for f in faces if f[0] not in have])
        text = f"Cluster {cluster_id} is not {pname}"
        return commit(c, "reject", text, ch, person_id=int(person_id))
