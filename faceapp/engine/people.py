"""People, clusters and labels: the user's identity operations, undoable across restarts.

Every operation (name, rename, merge, move, "not this person", hide, answers to
suggestions) is one transaction that also writes one ``oplog`` row. The row's
payload is the exact list of row changes (faces' person/cluster before and after,
people and clusters created or deleted, rejections added or removed), so
:func:`undo` applies the "before" side and :func:`redo` the "after" side through
the same code path the operation itself used. A successful call always writes
exactly one row, so the GUI's undo stack can map one command onto one row.
Undo is linear: a new operation drops whatever had been undone.

Rules kept by every operation:
- two faces of one photo are never the same person (explicit moves refuse, merges
  leave the conflicting faces of the source in Unknown and say so);
- a face rejected from a person ("not this person") never joins it by a merge or a
  suggestion; an explicit move or confirmation by the user lifts the rejection;
- confirmed faces (``person_id``) belong to no cluster.

All functions take the :class:`~faceapp.engine.library.Library` and may run in any
thread (one SQLite connection per thread; writes serialise on the write lock).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from faceapp.engine import cluster as cluster_mod
from faceapp.engine.library import Library, LibraryError

OPLOG_KEEP = 1000  # operations kept for undo
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


class PeopleError(LibraryError):
    """An identity operation that cannot be done (unknown id, name clash, same photo)."""


def group_title(kind: str, gid: int | None, name: str | None) -> str:
    """How a group is called in the GUI and the CLI alike."""
    if kind == "person":
        return name or f"Person {gid}"
    if kind == "cluster":
        return f"Cluster {gid}"
    return "Unknown faces"


@dataclass(frozen=True)
class Group:
    """One entry of the people sidebar: a named person, an automatic cluster or Unknown."""

    kind: str  # 'person' | 'cluster' | 'unknown'
    id: int  # person id, cluster id, 0 for Unknown
    name: str | None  # the person's name; None for clusters and Unknown
    count: int
    hidden: bool
    avatar_face_id: int | None

    @property
    def label(self) -> str:
        return group_title(self.kind, self.id, self.name)

    @property
    def ref(self) -> tuple[str, int]:
        return (self.kind, self.id)


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


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    kind: str
    description: str
    state: str  # 'done' | 'undone'
    created_at: float


# -- change sets: what an operation does, and what undo/redo re-apply ------------------


@dataclass
class _Changes:
    """Row changes of one operation. Lists of plain values so they serialise as JSON."""

    people: list[list] = field(default_factory=list)  # [id, before|None, after|None]
    clusters: list[list] = field(default_factory=list)  # [id, before|None, after|None]
    faces: list[list] = field(default_factory=list)  # [id, person0, cluster0, person1, cluster1]
    rej_add: list[list] = field(default_factory=list)  # [face, person]
    rej_del: list[list] = field(default_factory=list)
    crej_add: list[list] = field(default_factory=list)  # [face, cluster]
    crej_del: list[list] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"v": 1, **self.__dict__}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> _Changes:
        data = json.loads(text)
        data.pop("v", None)
        return cls(**data)

    def face(self, face_id: int, old: tuple, new: tuple) -> None:
        if tuple(old) != tuple(new):
            self.faces.append([face_id, old[0], old[1], new[0], new[1]])


def _person_row(c: sqlite3.Connection, person_id: int) -> list | None:
    row = c.execute(
        "SELECT name, hidden, created_at FROM people WHERE id = ?", (person_id,)
    ).fetchone()
    return list(row) if row else None


def _ids_json(ids: Iterable[int]) -> str:
    return json.dumps([int(i) for i in ids])


def _apply(c: sqlite3.Connection, ch: _Changes, forward: bool) -> None:
    """Bring the rows of a change set to their 'after' (forward) or 'before' state.

    Order matters for the foreign keys: rows that must exist are created first,
    faces and rejections move, rows that must not exist go last. A row that a later,
    unlogged step removed (a cluster a re-cluster dropped, a face a rescan replaced)
    is recreated when it is a cluster and skipped when it is a face.
    """
    side = 2 if forward else 1
    for pid, *rows in ch.people:
        row = rows[side - 1]
        if row is not None:
            c.execute(
                "INSERT INTO people(id, name, hidden, created_at) VALUES (?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name, hidden = excluded.hidden",
                (pid, *row),
            )
    for cid, *rows in ch.clusters:
        row = rows[side - 1]
        if row is not None:
            c.execute("INSERT OR IGNORE INTO clusters(id, created_at) VALUES (?, ?)", (cid, row))
    if ch.faces:
        p_col, c_col = (3, 4) if forward else (1, 2)
        wanted = {f[c_col] for f in ch.faces if f[c_col] is not None}
        now = time.time()
        c.executemany(
            "INSERT OR IGNORE INTO clusters(id, created_at) VALUES (?, ?)",
            [(cid, now) for cid in wanted],
        )
        c.executemany(
            "UPDATE faces SET person_id = (SELECT id FROM people WHERE id = ?), cluster_id = ?"
            " WHERE id = ?",
            [(f[p_col], f[c_col], f[0]) for f in ch.faces],
        )
    for table, col, add, remove in (
        ("rejections", "person_id", ch.rej_add, ch.rej_del),
        ("cluster_rejections", "cluster_id", ch.crej_add, ch.crej_del),
    ):
        parent = "people" if table == "rejections" else "clusters"
        if not forward:
            add, remove = remove, add
        c.executemany(f"DELETE FROM {table} WHERE face_id = ? AND {col} = ?", remove)
        c.executemany(
            f"INSERT OR IGNORE INTO {table}(face_id, {col}) SELECT ?1, ?2"
            f" WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?1)"
            f" AND EXISTS (SELECT 1 FROM {parent} WHERE id = ?2)",
            add,
        )
    for pid, *rows in ch.people:
        if rows[side - 1] is None:
            c.execute("DELETE FROM people WHERE id = ?", (pid,))
    for cid, *rows in ch.clusters:
        if rows[side - 1] is None:
            c.execute("DELETE FROM clusters WHERE id = ?", (cid,))


def _log(c: sqlite3.Connection, kind: str, description: str, ch: _Changes) -> None:
    c.execute("DELETE FROM oplog WHERE state = 'undone'")
    c.execute(
        "INSERT INTO oplog(kind, description, payload, state, created_at)"
        " VALUES (?, ?, ?, 'done', ?)",
        (kind, description, ch.to_json(), time.time()),
    )
    c.execute(
        "DELETE FROM oplog WHERE id <= (SELECT id FROM oplog ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (OPLOG_KEEP,),
    )


def _commit(c: sqlite3.Connection, kind: str, description: str, ch: _Changes) -> str:
    _apply(c, ch, forward=True)
    _log(c, kind, description, ch)
    return description


# -- lookups -------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    cleaned = re.sub(r"\s+", " ", str(name or "")).strip()
    if not cleaned:
        raise PeopleError("a person's name cannot be empty")
    if len(cleaned) > MAX_NAME:
        raise PeopleError(f"a name is at most {MAX_NAME} characters")
    return cleaned


def _person(c: sqlite3.Connection, person_id: int) -> tuple[int, str, bool]:
    row = c.execute(
        "SELECT id, name, hidden FROM people WHERE id = ?", (int(person_id),)
    ).fetchone()
    if row is None:
        raise PeopleError(f"no person {person_id}")
    return int(row[0]), row[1], bool(row[2])


def _person_by_name(c: sqlite3.Connection, name: str) -> int | None:
    row = c.execute(
        "SELECT id FROM people WHERE name = ? COLLATE NOCASE ORDER BY id LIMIT 1", (name,)
    ).fetchone()
    return int(row[0]) if row else None


def _cluster_exists(c: sqlite3.Connection, cluster_id: int) -> bool:
    return (
        c.execute("SELECT 1 FROM clusters WHERE id = ?", (int(cluster_id),)).fetchone() is not None
    )


def _faces_where(c: sqlite3.Connection, where: str, args: tuple = ()) -> list[tuple]:
    """(id, photo_id, person_id, cluster_id) of matching faces, by id."""
    return c.execute(
        f"SELECT id, photo_id, person_id, cluster_id FROM faces WHERE {where} ORDER BY id", args
    ).fetchall()


def _faces_by_id(c: sqlite3.Connection, face_ids: Sequence[int]) -> list[tuple]:
    ids = sorted({int(f) for f in face_ids})
    if not ids:
        raise PeopleError("no faces given")
    rows = _faces_where(c, "id IN (SELECT value FROM json_each(?))", (_ids_json(ids),))
    missing = sorted(set(ids) - {r[0] for r in rows})
    if missing:
        raise PeopleError(f"no face {', '.join(map(str, missing[:10]))}")
    return rows


def _person_photos(
    c: sqlite3.Connection, person_id: int, exclude: frozenset[int] | set[int] = frozenset()
) -> dict:
    """photo id -> a face id of that photo confirmed for the person."""
    out: dict[int, int] = {}
    for fid, photo in c.execute(
        "SELECT id, photo_id FROM faces WHERE person_id = ?", (person_id,)
    ).fetchall():
        if fid not in exclude:
            out[photo] = fid
    return out


def _rejections_of(c: sqlite3.Connection, person_id: int) -> set[int]:
    return {
        r[0] for r in c.execute("SELECT face_id FROM rejections WHERE person_id = ?", (person_id,))
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _new_id(c: sqlite3.Connection, table: str) -> int:
    seq = c.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    top = c.execute(f"SELECT IFNULL(MAX(id), 0) FROM {table}").fetchone()[0]
    return max(int(seq[0]) if seq else 0, int(top)) + 1


def _join_person(
    c: sqlite3.Connection, ch: _Changes, faces: list[tuple], person_id: int
) -> tuple[int, int, int]:
    """Faces join a person by a merge: rejected or same-photo faces go to Unknown instead.

    Returns (joined, left out because rejected, left out because of the same photo).
    """
    photos = _person_photos(c, person_id, exclude={f[0] for f in faces})
    rejected = _rejections_of(c, person_id)
    joined = refused = clashed = 0
    for fid, photo, person, cl in faces:
        if person == person_id:
            continue
        if fid in rejected:
            ch.face(fid, (person, cl), (None, None))
            refused += 1
        elif photo in photos:
            ch.face(fid, (person, cl), (None, None))
            clashed += 1
        else:
            ch.face(fid, (person, cl), (person_id, None))
            photos[photo] = fid
            joined += 1
    return joined, refused, clashed


def _left_out(refused: int, clashed: int) -> str:
    parts = []
    if refused:
        parts.append(f"{_plural(refused, 'face')} rejected before")
    if clashed:
        parts.append(f"{_plural(clashed, 'face')} in a photo already showing them")
    return f"; left in Unknown: {', '.join(parts)}" if parts else ""


def _cluster_into_person(
    c: sqlite3.Connection, ch: _Changes, cluster_id: int, person_id: int
) -> tuple[int, str]:
    """Every face of the cluster joins the person; its 'not in cluster' marks become
    'not this person' marks; the empty cluster goes."""
    faces = _faces_where(c, "cluster_id = ? AND person_id IS NULL", (cluster_id,))
    joined, refused, clashed = _join_person(c, ch, faces, person_id)
    for (fid,) in c.execute(
        "SELECT face_id FROM cluster_rejections WHERE cluster_id = ?", (cluster_id,)
    ).fetchall():
        ch.crej_del.append([fid, cluster_id])
        ch.rej_add.append([fid, person_id])
    _drop_cluster(c, ch, cluster_id)
    return joined, _left_out(refused, clashed)


def _drop_cluster(c: sqlite3.Connection, ch: _Changes, cluster_id: int) -> None:
    row = c.execute("SELECT created_at FROM clusters WHERE id = ?", (cluster_id,)).fetchone()
    if row is not None:
        # faces of missing photos may still point at it: they leave with it
        touched = {f[0] for f in ch.faces}
        for fid, _photo, person, cl in _faces_where(c, "cluster_id = ?", (cluster_id,)):
            if fid not in touched:
                ch.face(fid, (person, cl), (person, None))
        ch.clusters.append([cluster_id, row[0], None])


def _ref(ref: object) -> tuple[str, int]:
    if isinstance(ref, Group):
        return ref.ref
    kind, ident = cast(tuple[str, int], ref)
    if kind not in ("person", "cluster"):
        raise PeopleError(f"cannot merge {kind}: only people and clusters merge")
    return str(kind), int(ident)


# -- identity operations -----------------------------------------------------------------


def name_cluster(lib: Library, cluster_id: int, name: str) -> int:
    """Name a cluster: its faces become confirmed for a new person, or for the person
    already called ``name`` (case-insensitive), which is then a merge. Returns the
    person id."""
    name = _clean_name(name)
    with lib.transaction() as c:
        if not _cluster_exists(c, cluster_id):
            raise PeopleError(f"no cluster {cluster_id}")
        ch = _Changes()
        existing = _person_by_name(c, name)
        if existing is not None:
            person_id = existing
            pname = _person(c, existing)[1]
            joined, note = _cluster_into_person(c, ch, cluster_id, person_id)
            text = f"Merged cluster {cluster_id} into {pname} ({_plural(joined, 'face')}){note}"
            _commit(c, "merge", text, ch)
            return person_id
        person_id = _new_id(c, "people")
        ch.people.append([person_id, None, [name, 0, time.time()]])
        # the new person must exist before faces join it: apply people first
        joined, note = _cluster_into_person(c, ch, cluster_id, person_id)
        text = f"Named cluster {cluster_id} {name} ({_plural(joined, 'face')}){note}"
        _commit(c, "name", text, ch)
        return person_id


def create_person(lib: Library, name: str, face_ids: Sequence[int]) -> int:
    """A new person from chosen faces (or these faces join the person of that name).

    Same rules as :func:`move_faces`. Returns the person id.
    """
    name = _clean_name(name)
    with lib.transaction() as c:
        existing = _person_by_name(c, name)
        if existing is not None:
            _move(c, face_ids, existing, kind="move")
            return existing
        faces = _faces_by_id(c, face_ids)
        _check_same_photo(faces, {}, name)
        ch = _Changes()
        person_id = _new_id(c, "people")
        ch.people.append([person_id, None, [name, 0, time.time()]])
        for fid, _photo, person, cl in faces:
            ch.face(fid, (person, cl), (person_id, None))
            _lift_rejection(c, ch, fid, person_id)
        _commit(c, "name", f"New person {name} ({_plural(len(faces), 'face')})", ch)
        return person_id


def rename_person(lib: Library, person_id: int, name: str) -> str:
    """Rename; refuses a name another person already has (merge them instead)."""
    name = _clean_name(name)
    with lib.transaction() as c:
        pid, old, _ = _person(c, person_id)
        other = _person_by_name(c, name)
        if other is not None and other != pid:
            raise PeopleError(
                f"there is already a person named {_person(c, other)[1]!r}; merge instead"
            )
        before = _person_row(c, pid)
        assert before is not None  # _person() found it in this transaction
        ch = _Changes(people=[[pid, before, [name, before[1], before[2]]]])
        return _commit(c, "rename", f"Renamed {old} to {name}", ch)


def set_hidden(lib: Library, person_id: int, hidden: bool) -> str:
    """Hide a person from the people list (their faces stay theirs) or show them again."""
    with lib.transaction() as c:
        pid, name, _ = _person(c, person_id)
        before = _person_row(c, pid)
        assert before is not None  # _person() found it in this transaction
        ch = _Changes(people=[[pid, before, [before[0], int(bool(hidden)), before[2]]]])
        return _commit(c, "hide", f"{'Hid' if hidden else 'Showed'} {name}", ch)


def delete_person(lib: Library, person_id: int) -> str:
    """Forget a name: the person's faces go back to Unknown, their rejections go too."""
    with lib.transaction() as c:
        pid, name, _ = _person(c, person_id)
        ch = _Changes(people=[[pid, _person_row(c, pid), None]])
        faces = _faces_where(c, "person_id = ?", (pid,))
        for fid, _photo, person, cl in faces:
            ch.face(fid, (person, cl), (None, None))
        ch.rej_del = [[f, pid] for f in sorted(_rejections_of(c, pid))]
        return _commit(
            c, "delete", f"Removed {name} ({_plural(len(faces), 'face')} to Unknown)", ch
        )


def merge(lib: Library, source: object, target: object) -> str:
    """Merge ``source`` into ``target``; each is ``('person'|'cluster', id)`` or a Group.

    person -> person: every face moves, "not this person" marks follow, the source
    person is deleted. cluster -> person: the faces are confirmed for the person.
    cluster -> cluster: the faces join the target cluster. person -> cluster is read
    as the cluster joining the person (the named side survives). Faces that would
    put two faces of one photo in one group, or that were rejected from the target,
    go to Unknown and the description says how many. Returns the description.
    """
    skind, sid = _ref(source)
    tkind, tid = _ref(target)
    if (skind, sid) == (tkind, tid):
        raise PeopleError("cannot merge a group into itself")
    if skind == "person" and tkind == "cluster":
        skind, sid, tkind, tid = tkind, tid, skind, sid
    with lib.transaction() as c:
        ch = _Changes()
        if skind == "cluster" and not _cluster_exists(c, sid):
            raise PeopleError(f"no cluster {sid}")
        if tkind == "cluster" and not _cluster_exists(c, tid):
            raise PeopleError(f"no cluster {tid}")
        if tkind == "person":
            _, tname, _ = _person(c, tid)
        if skind == "person":
            _, sname, _ = _person(c, sid)
            faces = _faces_where(c, "person_id = ?", (sid,))
            joined, refused, clashed = _join_person(c, ch, faces, tid)
            moved = {f[0] for f in ch.faces if f[3] == tid}
            target_rej = _rejections_of(c, tid)
            target_faces = {r[0] for r in _faces_where(c, "person_id = ?", (tid,))} | moved
            for fid in sorted(_rejections_of(c, sid)):
                ch.rej_del.append([fid, sid])
                if fid not in target_rej and fid not in target_faces:
                    ch.rej_add.append([fid, tid])
            ch.people.append([sid, _person_row(c, sid), None])
            text = (
                f"Merged {sname} into {tname} ({_plural(joined, 'face')})"
                f"{_left_out(refused, clashed)}"
            )
        elif tkind == "person":
            joined, note = _cluster_into_person(c, ch, sid, tid)
            text = f"Merged cluster {sid} into {tname} ({_plural(joined, 'face')}){note}"
        else:
            faces = _faces_where(c, "cluster_id = ? AND person_id IS NULL", (sid,))
            photos = {r[1] for r in _faces_where(c, "cluster_id = ? AND person_id IS NULL", (tid,))}
            refused_set = {
                r[0]
                for r in c.execute(
                    "SELECT face_id FROM cluster_rejections WHERE cluster_id = ?", (tid,)
                )
            }
            joined = refused = clashed = 0
            for fid, photo, person, cl in faces:
                if fid in refused_set:
                    ch.face(fid, (person, cl), (None, None))
                    refused += 1
                elif photo in photos:
                    ch.face(fid, (person, cl), (None, None))
                    clashed += 1
                else:
                    ch.face(fid, (person, cl), (None, tid))
                    photos.add(photo)
                    joined += 1
            for (fid,) in c.execute(
                "SELECT face_id FROM cluster_rejections WHERE cluster_id = ?", (sid,)
            ).fetchall():
                ch.crej_del.append([fid, sid])
                ch.crej_add.append([fid, tid])
            _drop_cluster(c, ch, sid)
            text = (
                f"Merged cluster {sid} into cluster {tid} ({_plural(joined, 'face')})"
                f"{_left_out(refused, clashed)}"
            )
        return _commit(c, "merge", text, ch)


def _check_same_photo(faces: list[tuple], photos: dict[int, int], name: str) -> None:
    seen: dict[int, int] = {}
    for fid, photo, *_ in faces:
        if photo in photos:
            raise PeopleError(
                f"face {fid} is in the same photo as face {photos[photo]} of {name}: "
                "two faces of one photo cannot be the same person"
            )
        if photo in seen:
            raise PeopleError(
                f"faces {seen[photo]} and {fid} are in the same photo: "
                "two faces of one photo cannot be the same person"
            )
        seen[photo] = fid


def _lift_rejection(c: sqlite3.Connection, ch: _Changes, face_id: int, person_id: int) -> None:
    if c.execute(
        "SELECT 1 FROM rejections WHERE face_id = ? AND person_id = ?", (face_id, person_id)
    ).fetchone():
        ch.rej_del.append([face_id, person_id])


def _move(
    c: sqlite3.Connection,
    face_ids: Sequence[int],
    person_id: int,
    *,
    kind: str,
    text: str | None = None,
) -> str:
    pid, name, _ = _person(c, person_id)
    faces = _faces_by_id(c, face_ids)
    _check_same_photo(faces, _person_photos(c, pid, exclude={f[0] for f in faces}), name)
    ch = _Changes()
    for fid, _photo, person, cl in faces:
        ch.face(fid, (person, cl), (pid, None))
        _lift_rejection(c, ch, fid, pid)
    return _commit(c, kind, text or f"Moved {_plural(len(faces), 'face')} to {name}", ch)


def move_faces(lib: Library, face_ids: Sequence[int], person_id: int) -> str:
    """Confirm faces for a person (from anywhere). The user's explicit choice lifts an
    earlier "not this person" for them; a face in a photo where the person already
    has a face is refused (PeopleError) and nothing changes."""
    with lib.transaction() as c:
        return _move(c, face_ids, person_id, kind="move")


def reject_faces(lib: Library, face_ids: Sequence[int], person_id: int) -> str:
    """ "Not this person": the faces leave the person for Unknown, and the person is
    never suggested for them, nor merged into them, again."""
    with lib.transaction() as c:
        pid, name, _ = _person(c, person_id)
        faces = _faces_by_id(c, face_ids)
        rejected = _rejections_of(c, pid)
        ch = _Changes()
        for fid, _photo, person, cl in faces:
            if person == pid:
                ch.face(fid, (person, cl), (None, None))
            if fid not in rejected:
                ch.rej_add.append([fid, pid])
        return _commit(c, "reject", f"Not {name}: {_plural(len(faces), 'face')}", ch)


def remove_from_cluster(lib: Library, face_ids: Sequence[int], cluster_id: int) -> str:
    """ "Not in this group" for an unnamed cluster: the faces go to Unknown and
    re-clustering never puts them back into this cluster (naming the cluster later
    turns the mark into "not this person")."""
    with lib.transaction() as c:
        if not _cluster_exists(c, cluster_id):
            raise PeopleError(f"no cluster {cluster_id}")
        faces = _faces_by_id(c, face_ids)
        ch = _Changes()
        have = {
            r[0]
            for r in c.execute(
                "SELECT face_id FROM cluster_rejections WHERE cluster_id = ?", (cluster_id,)
            )
        }
        for fid, _photo, person, cl in faces:
            if cl == cluster_id and person is None:
                ch.face(fid, (person, cl), (None, None))
            if fid not in have:
                ch.crej_add.append([fid, cluster_id])
        text = f"Removed {_plural(len(faces), 'face')} from cluster {cluster_id}"
        return _commit(c, "reject", text, ch)


def confirm_suggestion(lib: Library, face_id: int, person_id: int) -> str:
    """Answer "yes" to "Is this X?": the face is confirmed for the person."""
    with lib.transaction() as c:
        _, name, _ = _person(c, person_id)
        return _move(c, [face_id], person_id, kind="confirm", text=f"Face {face_id} is {name}")


def reject_suggestion(lib: Library, face_id: int, person_id: int) -> str:
    """Answer "no" to "Is this X?": remembered; the face stays where it is."""
    with lib.transaction() as c:
        _, name, _ = _person(c, person_id)
        faces = _faces_by_id(c, [face_id])
        ch = _Changes()
        if faces[0][2] == person_id:
            ch.face(face_id, (faces[0][2], faces[0][3]), (None, None))
        if face_id not in _rejections_of(c, person_id):
            ch.rej_add.append([face_id, person_id])
        return _commit(c, "reject", f"Face {face_id} is not {name}", ch)


# -- undo / redo ---------------------------------------------------------------------------


def undo(lib: Library) -> str | None:
    """Undo the latest operation still done; returns its description (None: nothing)."""
    with lib.transaction() as c:
        row = c.execute(
            "SELECT id, description, payload FROM oplog WHERE state = 'done'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        _apply(c, _Changes.from_json(row[2]), forward=False)
        c.execute("UPDATE oplog SET state = 'undone' WHERE id = ?", (row[0],))
        return row[1]


def redo(lib: Library) -> str | None:
    """Redo the earliest undone operation; returns its description (None: nothing)."""
    with lib.transaction() as c:
        row = c.execute(
            "SELECT id, description, payload FROM oplog WHERE state = 'undone'"
            " ORDER BY id ASC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        _apply(c, _Changes.from_json(row[2]), forward=True)
        c.execute("UPDATE oplog SET state = 'done' WHERE id = ?", (row[0],))
        return row[1]


def undo_redo_text(lib: Library) -> tuple[str | None, str | None]:
    """Descriptions of what undo and redo would do now (for menu texts)."""
    q = lib.conn.execute
    u = q("SELECT description FROM oplog WHERE state = 'done' ORDER BY id DESC LIMIT 1").fetchone()
    r = q("SELECT description FROM oplog WHERE state = 'undone' ORDER BY id LIMIT 1").fetchone()
    return (u[0] if u else None, r[0] if r else None)


def history(lib: Library, limit: int | None = 100) -> list[HistoryEntry]:
    """Logged operations, newest first (undone ones included, marked as such)."""
    rows = lib.conn.execute(
        "SELECT id, kind, description, state, created_at FROM oplog ORDER BY id DESC LIMIT ?",
        (-1 if limit is None else int(limit),),
    ).fetchall()
    return [HistoryEntry(*r) for r in rows]


# -- reading ---------------------------------------------------------------------------------

_SCORED = (
    "WITH fa AS (SELECT f.id, f.person_id, f.cluster_id,"
    " (f.x2 - f.x1) * (f.y2 - f.y1) * f.prob AS score"
    " FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.status = 'ok') "
)


def groups(lib: Library) -> list[Group]:
    """People (by name, hidden ones flagged), then clusters (largest first), then Unknown.

    Counts only faces of photos present on disk; the avatar is the group's largest,
    clearest face. A few SQL aggregates, so it stays fast on large libraries.
    """
    q = lib.conn.execute
    # SQLite returns the row of MAX(score) for the bare column id
    per_person = {
        r[0]: (r[1], r[3])
        for r in q(
            _SCORED + "SELECT person_id, id, MAX(score), COUNT(*) FROM fa"
            " WHERE person_id IS NOT NULL GROUP BY person_id"
        )
    }
    out = [
        Group(
            "person",
            pid,
            name,
            per_person.get(pid, (None, 0))[1],
            bool(hidden),
            per_person.get(pid, (None, 0))[0],
        )
        for pid, name, hidden in q(
            "SELECT id, name, hidden FROM people ORDER BY name COLLATE NOCASE, id"
        )
    ]
    clusters = q(
        _SCORED + "SELECT cluster_id, id, MAX(score), COUNT(*) AS n FROM fa"
        " WHERE person_id IS NULL AND cluster_id IS NOT NULL GROUP BY cluster_id"
        " ORDER BY n DESC, cluster_id"
    ).fetchall()
    out += [Group("cluster", cid, None, n, False, avatar) for cid, avatar, _, n in clusters]
    avatar, _, n = q(
        _SCORED + "SELECT id, MAX(score), COUNT(*) FROM fa"
        " WHERE person_id IS NULL AND cluster_id IS NULL"
    ).fetchone()
    out.append(Group("unknown", 0, None, int(n), False, avatar))
    return out


def group_faces(lib: Library, kind: str, group_id: int | None = None) -> list[int]:
    """Face ids of one group (photos present on disk), in photo order."""
    args: tuple[int, ...] = ()
    if kind == "person" and group_id is not None:
        where, args = "f.person_id = ?", (int(group_id),)
    elif kind == "cluster" and group_id is not None:
        where, args = "f.cluster_id = ? AND f.person_id IS NULL", (int(group_id),)
    elif kind == "unknown":
        where = "f.person_id IS NULL AND f.cluster_id IS NULL"
    else:
        raise PeopleError(f"unknown group kind {kind!r}")
    rows = lib.conn.execute(
        "SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id"
        f" WHERE p.status = 'ok' AND {where} ORDER BY p.path, f.x1, f.id",
        args,
    ).fetchall()
    return [r[0] for r in rows]


def parse_group_ref(lib: Library, text: str) -> tuple[str, int]:
    """'c12' / 'cluster:12' / 'p3' / 'person:3' / an exact person name -> (kind, id)."""
    s = str(text).strip()
    m = re.fullmatch(r"(?i)(c|cluster|p|person)\s*[:#]?\s*(\d+)", s)
    if m:
        kind = "cluster" if m.group(1).lower().startswith("c") else "person"
        ident = int(m.group(2))
        c = lib.conn
        if kind == "cluster" and not _cluster_exists(c, ident):
            raise PeopleError(f"no cluster {ident}")
        if kind == "person":
            _person(c, ident)
        return kind, ident
    rows = lib.conn.execute("SELECT id FROM people WHERE name = ? ORDER BY id", (s,)).fetchall()
    if not rows:
        rows = lib.conn.execute(
            "SELECT id FROM people WHERE name = ? COLLATE NOCASE ORDER BY id", (s,)
        ).fetchall()
    if len(rows) == 1:
        return "person", int(rows[0][0])
    if len(rows) > 1:
        raise PeopleError(f"several people are named {s!r}: use p<ID>")
    raise PeopleError(f"no person or cluster {s!r} (use c<ID>, p<ID> or an exact name)")


# -- suggestions -----------------------------------------------------------------------------


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
    threshold = cluster_mod.model_threshold(lib)
    key = str(lib.path.resolve())
    with _nearest_lock:
        sig = _signature(lib)
        hit = _nearest_cache.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1], threshold
        state = cluster_mod.load_state(lib)
        person, dist = cluster_mod.library_nearest_people(lib, state)
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
