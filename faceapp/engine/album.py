"""What the library shows: the people sidebar's groups, a group's faces, group references.

Read-only queries shared by the GUI and the CLI, plus the small lookups the
identity operations (:mod:`people`) check their arguments with. Imports no torch.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from faceapp.engine.library import Library, LibraryError


class PeopleError(LibraryError):
    """An identity operation that cannot be done (unknown id, name clash, same photo)."""


def group_title(kind: str, gid: int | None, name: str | None = None) -> str:
    """How a group is called, in the GUI and the CLI alike."""
    if kind == "person":
        return name or f"Person {gid}"
    if kind == "cluster":
        return name or f"Cluster {gid}"
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


def get_person(c: sqlite3.Connection, person_id: int) -> tuple[int, str, bool]:
    """(id, name, hidden) of a person; PeopleError when there is none."""
    row = c.execute(
        "SELECT id, name, hidden FROM people WHERE id = ?", (int(person_id),)
    ).fetchone()
    if row is None:
        raise PeopleError(f"no person {person_id}")
    return int(row[0]), row[1], bool(row[2])


def cluster_exists(c: sqlite3.Connection, cluster_id: int) -> bool:
    return (
        c.execute("SELECT 1 FROM clusters WHERE id = ?", (int(cluster_id),)).fetchone() is not None
    )


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
            cover or per_person.get(pid, (None, 0))[0],
        )
        for pid, name, hidden, cover in q(  # the cover the user chose, if still theirs
            "SELECT pe.id, pe.name, pe.hidden, f.id FROM people pe LEFT JOIN faces f"
            " ON f.id = pe.cover_face_id AND f.person_id = pe.id"
            " ORDER BY pe.name COLLATE NOCASE, pe.id"
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
    args: tuple[int, ...]
    if kind == "unknown":
        where, args = "f.person_id IS NULL AND f.cluster_id IS NULL", ()
    elif kind not in ("person", "cluster"):
        raise PeopleError(f"unknown group kind {kind!r}")
    elif group_id is None:
        raise PeopleError(f"a {kind} group needs an id")
    elif kind == "person":
        where, args = "f.person_id = ?", (int(group_id),)
    else:
        where, args = "f.cluster_id = ? AND f.person_id IS NULL", (int(group_id),)
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
        if kind == "cluster" and not cluster_exists(c, ident):
            raise PeopleError(f"no cluster {ident}")
        if kind == "person":
            get_person(c, ident)
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
