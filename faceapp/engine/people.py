"""People, clusters and labels: the user's identity operations, undoable across restarts.

Every operation (new person, rename, merge, move, "not this person", hide, answers to
suggestions; naming a cluster is :mod:`faceapp.engine.naming`'s) is one transaction
that builds the exact row changes and hands them to
:func:`faceapp.engine.oplog.commit`, which applies them and writes one ``oplog`` row;
undo and redo live there. Each returns that module's
:class:`~faceapp.engine.oplog.OpChanges`: the description and the exact faces,
people and clusters changed. Imports no torch.

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
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence, Set
from pathlib import PurePosixPath

from faceapp.engine.album import Group, PeopleError, cluster_exists, get_person
from faceapp.engine.birthdays import before_birth
from faceapp.engine.library import Library
from faceapp.engine.oplog import PERSON_SETTINGS, Changes, OpChanges, commit

MAX_NAME = 200


def _person_row(c: sqlite3.Connection, person_id: int) -> list | None:
    row = c.execute(
        "SELECT name, hidden, created_at FROM people WHERE id = ?", (person_id,)
    ).fetchone()
    return list(row) if row else None


def _settings(c: sqlite3.Connection, person_id: int) -> list[list]:
    """A person's settings (birth date, cover) as changes to None: undoing the person's
    deletion brings them back."""
    row = c.execute(
        f"SELECT {', '.join(PERSON_SETTINGS)} FROM people WHERE id = ?", (person_id,)
    ).fetchone()
    return [[person_id, k, v, None] for k, v in zip(PERSON_SETTINGS, row, strict=True) if v]


def _ids_json(ids: Iterable[int]) -> str:
    return json.dumps([int(i) for i in ids])


def _clean_name(name: str) -> str:
    cleaned = re.sub(r"\s+", " ", str(name or "")).strip()
    if not cleaned:
        raise PeopleError("a person's name cannot be empty")
    if len(cleaned) > MAX_NAME:
        raise PeopleError(f"a name is at most {MAX_NAME} characters")
    return cleaned


def _person_by_name(c: sqlite3.Connection, name: str) -> int | None:
    row = c.execute(
        "SELECT id FROM people WHERE name = ? COLLATE NOCASE ORDER BY id LIMIT 1", (name,)
    ).fetchone()
    return int(row[0]) if row else None


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


def _person_photos(c: sqlite3.Connection, person_id: int, exclude: Set[int] = frozenset()) -> dict:
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
    c: sqlite3.Connection, ch: Changes, faces: list[tuple], person_id: int
) -> tuple[int, int, int]:
    """Faces join a person by a merge: rejected or same-photo faces go to Unknown instead.

    Returns (joined, left out because rejected, left out because of the same photo).
    """
    photos = set(_person_photos(c, person_id, exclude={f[0] for f in faces}))
    rejected = _rejections_of(c, person_id) | before_birth(c, person_id, [f[0] for f in faces])
    faces = [f for f in faces if f[2] != person_id]
    return _join(ch, faces, (person_id, None), rejected, photos)


def _join(
    ch: Changes,
    faces: list[tuple],
    target: tuple[int | None, int | None],
    refused_ids: set[int],
    photos: set[int],
) -> tuple[int, int, int]:
    """Faces join ``target`` (person, cluster) unless refused there or their photo is one
    ``target`` already shows: those go to Unknown. Returns (joined, refused, clashed)."""
    joined = refused = clashed = 0
    for fid, photo, person, cl in faces:
        if fid in refused_ids:
            ch.face(fid, (person, cl), (None, None))
            refused += 1
        elif photo in photos:
            ch.face(fid, (person, cl), (None, None))
            clashed += 1
        else:
            ch.face(fid, (person, cl), target)
            photos.add(photo)
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
    c: sqlite3.Connection, ch: Changes, cluster_id: int, person_id: int
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


def _drop_cluster(c: sqlite3.Connection, ch: Changes, cluster_id: int) -> None:
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
    if not isinstance(ref, (tuple, list)) or len(ref) != 2:
        raise PeopleError(f"cannot merge {ref!r}: not a group")
    kind, ident = ref
    if kind not in ("person", "cluster"):
        raise PeopleError(f"cannot merge {kind}: only people and clusters merge")
    return str(kind), int(ident)


# -- identity operations -----------------------------------------------------------------


def create_person(lib: Library, name: str, face_ids: Sequence[int]) -> OpChanges:
    """A new person from chosen faces (or these faces join the person of that name).

    Same rules as :func:`move_faces`. The result's ``person_id`` is the person.
    """
    name = _clean_name(name)
    with lib.transaction() as c:
        existing = _person_by_name(c, name)
        if existing is not None:
            return _move(c, face_ids, existing, kind="move")
        faces = _faces_by_id(c, face_ids)
        _check_same_photo(faces, {}, name)
        ch = Changes()
        person_id = _new_id(c, "people")
        ch.people.append([person_id, None, [name, 0, time.time()]])
        for fid, _photo, person, cl in faces:
            ch.face(fid, (person, cl), (person_id, None))
            _lift_rejection(c, ch, fid, person_id)
        text = f"New person {name} ({_plural(len(faces), 'face')})"
        return commit(c, "name", text, ch, person_id=person_id)


def rename_person(lib: Library, person_id: int, name: str) -> OpChanges:
    """Rename; refuses a name another person already has (merge them instead)."""
    name = _clean_name(name)
    with lib.transaction() as c:
        pid, old, _ = get_person(c, person_id)
        other = _person_by_name(c, name)
        if other is not None and other != pid:
            raise PeopleError(
                f"there is already a person named {get_person(c, other)[1]!r}; merge instead"
            )
        before = _person_row(c, pid)
        if before is None:
            raise PeopleError(f"no person {pid}")
        ch = Changes(people=[[pid, before, [name, before[1], before[2]]]])
        return commit(c, "rename", f"Renamed {old} to {name}", ch)


def set_hidden(lib: Library, person_id: int, hidden: bool) -> OpChanges:
    """Hide a person from the people list (their faces stay theirs) or show them again."""
    with lib.transaction() as c:
        pid, name, _ = get_person(c, person_id)
        before = _person_row(c, pid)
        if before is None:
            raise PeopleError(f"no person {pid}")
        ch = Changes(people=[[pid, before, [before[0], int(bool(hidden)), before[2]]]])
        return commit(c, "hide", f"{'Hid' if hidden else 'Showed'} {name}", ch)


def delete_person(lib: Library, person_id: int) -> OpChanges:
    """Forget a name: the person's faces go back to Unknown, their rejections go too."""
    with lib.transaction() as c:
        pid, name, _ = get_person(c, person_id)
        ch = Changes(people=[[pid, _person_row(c, pid), None]], settings=_settings(c, pid))
        faces = _faces_where(c, "person_id = ?", (pid,))
        for fid, _photo, person, cl in faces:
            ch.face(fid, (person, cl), (None, None))
        ch.rej_del = [[f, pid] for f in sorted(_rejections_of(c, pid))]
        return commit(c, "delete", f"Removed {name} ({_plural(len(faces), 'face')} to Unknown)", ch)


def merge(lib: Library, source: object, target: object) -> OpChanges:
    """Merge ``source`` into ``target``; each is ``('person'|'cluster', id)`` or a Group.

    person -> person: every face moves, "not this person" marks follow, the source
    person is deleted. cluster -> person: the faces are confirmed for the person.
    cluster -> cluster: the faces join the target cluster. person -> cluster is read
    as the cluster joining the person (the named side survives). Faces that would
    put two faces of one photo in one group, or that were rejected from the target,
    go to Unknown and the description says how many.
    """
    skind, sid = _ref(source)
    tkind, tid = _ref(target)
    if (skind, sid) == (tkind, tid):
        raise PeopleError("cannot merge a group into itself")
    if skind == "person" and tkind == "cluster":
        skind, sid, tkind, tid = tkind, tid, skind, sid
    with lib.transaction() as c:
        ch = Changes()
        if skind == "cluster" and not cluster_exists(c, sid):
            raise PeopleError(f"no cluster {sid}")
        if tkind == "cluster" and not cluster_exists(c, tid):
            raise PeopleError(f"no cluster {tid}")
        if tkind == "person":
            _, tname, _ = get_person(c, tid)
        if skind == "person":
            _, sname, _ = get_person(c, sid)
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
            ch.settings += _settings(c, sid)
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
            joined, refused, clashed = _join(ch, faces, (None, tid), refused_set, photos)
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
        return commit(c, "merge", text, ch)


def _check_same_photo(faces: list[tuple], photos: dict[int, int], name: str) -> None:
    seen: dict[int, int] = {}
    for fid, photo, *_ in faces:
        if photo in photos:
            raise PeopleError(
                f"{name} already has a face in the same photo: "
                "two faces of one photo cannot be the same person"
            )
        if photo in seen:
            raise PeopleError(
                "two of these faces are in the same photo: "
                "two faces of one photo cannot be the same person"
            )
        seen[photo] = fid


def _lift_rejection(c: sqlite3.Connection, ch: Changes, face_id: int, person_id: int) -> None:
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
) -> OpChanges:
    pid, name, _ = get_person(c, person_id)
    faces = _faces_by_id(c, face_ids)
    _check_same_photo(faces, _person_photos(c, pid, exclude={f[0] for f in faces}), name)
    ch = Changes()
    for fid, _photo, person, cl in faces:
        ch.face(fid, (person, cl), (pid, None))
        _lift_rejection(c, ch, fid, pid)
    text = text or f"Moved {_plural(len(faces), 'face')} to {name}"
    return commit(c, kind, text, ch, person_id=pid)


def move_faces(lib: Library, face_ids: Sequence[int], person_id: int) -> OpChanges:
    """Confirm faces for a person (from anywhere). The user's explicit choice lifts an
    earlier "not this person" for them; a face in a photo where the person already
    has a face is refused (PeopleError) and nothing changes."""
    with lib.transaction() as c:
        return _move(c, face_ids, person_id, kind="move")


def reject_faces(lib: Library, face_ids: Sequence[int], person_id: int) -> OpChanges:
    """ "Not this person": the faces leave the person for Unknown, and the person is
    never suggested for them, nor merged into them, again."""
    with lib.transaction() as c:
        pid, name, _ = get_person(c, person_id)
        faces = _faces_by_id(c, face_ids)
        rejected = _rejections_of(c, pid)
        ch = Changes()
        for fid, _photo, person, cl in faces:
            if person == pid:
                ch.face(fid, (person, cl), (None, None))
            if fid not in rejected:
                ch.rej_add.append([fid, pid])
        return commit(c, "reject", f"Not {name}: {_plural(len(faces), 'face')}", ch)


def remove_from_cluster(lib: Library, face_ids: Sequence[int], cluster_id: int) -> OpChanges:
    """ "Not in this group" for an unnamed cluster: the faces go to Unknown and
    re-clustering never puts them back into this cluster (naming the cluster later
    turns the mark into "not this person")."""
    with lib.transaction() as c:
        if not cluster_exists(c, cluster_id):
            raise PeopleError(f"no cluster {cluster_id}")
        faces = _faces_by_id(c, face_ids)
        ch = Changes()
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
        return commit(c, "reject", text, ch)


def _face_in(c: sqlite3.Connection, face_id: int) -> str:
    """'The face in IMG_0042.jpg': how messages name a face (never by its id)."""
    row = c.execute(
        "SELECT p.path FROM faces f JOIN photos p ON p.id = f.photo_id WHERE f.id = ?",
        (int(face_id),),
    ).fetchone()
    return f"The face in {PurePosixPath(row[0]).name}" if row else "The face"


def confirm_suggestion(lib: Library, face_id: int, person_id: int) -> OpChanges:
    """Answer "yes" to "Is this X?": the face is confirmed for the person."""
    with lib.transaction() as c:
        _, name, _ = get_person(c, person_id)
        text = f"{_face_in(c, face_id)} is {name}"
        return _move(c, [face_id], person_id, kind="confirm", text=text)


def reject_suggestion(lib: Library, face_id: int, person_id: int) -> OpChanges:
    """Answer "no" to "Is this X?": remembered; the face stays where it is."""
    with lib.transaction() as c:
        _, name, _ = get_person(c, person_id)
        faces = _faces_by_id(c, [face_id])
        ch = Changes()
        if faces[0][2] == person_id:
            ch.face(face_id, (faces[0][2], faces[0][3]), (None, None))
        if face_id not in _rejections_of(c, person_id):
            ch.rej_add.append([face_id, person_id])
        return commit(c, "reject", f"{_face_in(c, face_id)} is not {name}", ch)
