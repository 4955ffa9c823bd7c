"""The operation log: every identity change as one row, so undo and redo survive restarts.

An operation builds a :class:`Changes` (the exact row changes: faces' person and
cluster before and after, people and clusters created or deleted, rejections added
or removed) and hands it to :func:`commit` inside its transaction, which applies
the "after" side and writes one ``oplog`` row. :func:`undo` applies the "before"
side of the latest done row and :func:`redo` the "after" side of the earliest
undone one, through the same code path. Undo is linear: a new operation drops
whatever had been undone.

Every operation, undo and redo returns an :class:`OpChanges`: its description
and exactly which faces, people and clusters changed (as Anki's collection
operations return ``OpChanges``), so a view redraws only what it shows of those.
The log lives in the library, so every process sees the same history: the GUI
reads :func:`undo_status` from here rather than keeping a stack of its own, and
undo undoes the latest operation of any process, then says which one it was.

A new operation in another module builds a :class:`Changes` and calls
:func:`commit` inside ``lib.transaction()``; nothing else is needed for undo.
Imports no torch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field, replace

from faceapp.engine.library import Library
from faceapp.engine.library_schema import inserted_id

OPLOG_KEEP = 1000  # operations kept for undo
PERSON_SETTINGS = ("birth_date", "cover_face_id")  # people columns Changes.settings may set


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    kind: str
    description: str
    state: str  # 'done' | 'undone'
    created_at: float


@dataclass(frozen=True)
class OpChanges:
    """What one operation, undo or redo did: for the status bar and for redrawing."""

    kind: str  # 'name', 'rename', 'merge', 'move', 'reject', 'hide', 'delete', 'confirm', ...
    description: str  # "Renamed Anna to Anne"
    action: str = "do"  # 'do' | 'undo' | 'redo'
    step: int = 0  # the oplog row
    faces: frozenset[int] = frozenset()  # faces whose person, cluster or rejections changed
    people: frozenset[int] = frozenset()  # people created, deleted, renamed, joined or left
    clusters: frozenset[int] = frozenset()  # clusters created, deleted, joined or left
    unknown: bool = False  # faces entered or left Unknown
    person_id: int | None = None  # the person an operation named or created

    def touches(self, kind: str, ident: int = 0) -> bool:
        """Whether the group ('person' | 'cluster' | 'unknown', id) changed."""
        if kind == "person":
            return ident in self.people
        if kind == "cluster":
            return ident in self.clusters
        return self.unknown

    @property
    def status_text(self) -> str:
        """What the status bar says: "Undid: Renamed Anna to Anne"."""
        verb = {"undo": "Undid: ", "redo": "Redid: "}.get(self.action, "")
        return verb + self.description


@dataclass(frozen=True)
class UndoStatus:
    """What undo and redo would do now, read from the library's log (any process's)."""

    undo: str | None
    redo: str | None
    last_step: tuple[int, int]  # (latest row, rows done): changes with every do/undo/redo


@dataclass
class Changes:
    """Row changes of one operation. Lists of plain values so they serialise as JSON."""

    people: list[list] = field(default_factory=list)  # [id, before|None, after|None]
    clusters: list[list] = field(default_factory=list)  # [id, before|None, after|None]
    faces: list[list] = field(default_factory=list)  # [id, person0, cluster0, person1, cluster1]
    rej_add: list[list] = field(default_factory=list)  # [face, person]
    rej_del: list[list] = field(default_factory=list)
    crej_add: list[list] = field(default_factory=list)  # [face, cluster]
    crej_del: list[list] = field(default_factory=list)
    # a person's settings: [person, column (PERSON_SETTINGS), before, after]
    settings: list[list] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"v": 1, **self.__dict__}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Changes:
        data = json.loads(text)
        data.pop("v", None)
        return cls(**data)

    def face(self, face_id: int, old: tuple, new: tuple) -> None:
        if tuple(old) != tuple(new):
            self.faces.append([face_id, old[0], old[1], new[0], new[1]])

    def result(self, kind: str, description: str, action: str, step: int) -> OpChanges:
        """The ids these row changes touch, as an :class:`OpChanges`."""
        faces = {f[0] for f in self.faces}
        people = {p[0] for p in self.people} | {f[i] for f in self.faces for i in (1, 3)}
        people |= {s[0] for s in self.settings}
        clusters = {c[0] for c in self.clusters} | {f[i] for f in self.faces for i in (2, 4)}
        for face, person in self.rej_add + self.rej_del:
            faces.add(face)
            people.add(person)
        for face, cluster in self.crej_add + self.crej_del:
            faces.add(face)
            clusters.add(cluster)
        unknown = any(f[1:3] == [None, None] or f[3:5] == [None, None] for f in self.faces)
        return OpChanges(
            kind,
            description,
            action,
            step,
            frozenset(faces),
            frozenset(people - {None}),
            frozenset(clusters - {None}),
            unknown,
        )


def apply(c: sqlite3.Connection, ch: Changes, forward: bool) -> None:
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
    for pid, column, *values in ch.settings:
        if column not in PERSON_SETTINGS:
            raise ValueError(f"not a person setting: {column!r}")
        value = values[side - 1]
        if column == "cover_face_id":  # a face deleted since (rescan) leaves no cover
            c.execute("UPDATE people SET cover_face_id = (SELECT id FROM faces WHERE id = ?)"
                      " WHERE id = ?", (value, pid))  # fmt: skip
        else:
            c.execute(f"UPDATE people SET {column} = ? WHERE id = ?", (value, pid))
    for pid, *rows in ch.people:
        if rows[side - 1] is None:
            c.execute("DELETE FROM people WHERE id = ?", (pid,))
    for cid, *rows in ch.clusters:
        if rows[side - 1] is None:
            c.execute("DELETE FROM clusters WHERE id = ?", (cid,))


def _log(c: sqlite3.Connection, kind: str, description: str, ch: Changes) -> int:
    c.execute("DELETE FROM oplog WHERE state = 'undone'")
    cur = c.execute(
        "INSERT INTO oplog(kind, description, payload, state, created_at)"
        " VALUES (?, ?, ?, 'done', ?)",
        (kind, description, ch.to_json(), time.time()),
    )
    c.execute(
        "DELETE FROM oplog WHERE id <= (SELECT id FROM oplog ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (OPLOG_KEEP,),
    )
    return inserted_id(cur)


def commit(
    c: sqlite3.Connection,
    kind: str,
    description: str,
    ch: Changes,
    *,
    person_id: int | None = None,
) -> OpChanges:
    """Apply an operation's changes and log it, inside the caller's transaction."""
    apply(c, ch, forward=True)
    step = _log(c, kind, description, ch)
    return replace(ch.result(kind, description, "do", step), person_id=person_id)


def _replay(lib: Library, action: str) -> OpChanges | None:
    done, order, after = (
        ("done", "DESC", "undone") if action == "undo" else ("undone", "ASC", "done")
    )
    with lib.transaction() as c:
        row = c.execute(
            f"SELECT id, kind, description, payload FROM oplog WHERE state = '{done}'"
            f" ORDER BY id {order} LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        ch = Changes.from_json(row[3])
        apply(c, ch, forward=action == "redo")
        c.execute(f"UPDATE oplog SET state = '{after}' WHERE id = ?", (row[0],))
        return ch.result(row[1], row[2], action, row[0])


def undo(lib: Library) -> OpChanges | None:
    """Undo the latest operation still done, whichever process did it (None: nothing).

    Read and reverted in one write transaction, so the result names exactly the
    operation that was undone, even when another process undid one a moment ago.
    """
    return _replay(lib, "undo")


def redo(lib: Library) -> OpChanges | None:
    """Redo the earliest undone operation (None: nothing)."""
    return _replay(lib, "redo")


def undo_status(lib: Library) -> UndoStatus:
    """Descriptions of what undo and redo would do now (menu texts), and the log's step."""
    q = lib.conn.execute
    u = q("SELECT description FROM oplog WHERE state = 'done' ORDER BY id DESC LIMIT 1").fetchone()
    r = q("SELECT description FROM oplog WHERE state = 'undone' ORDER BY id LIMIT 1").fetchone()
    top, done = q("SELECT IFNULL(MAX(id), 0), IFNULL(SUM(state = 'done'), 0) FROM oplog").fetchone()
    return UndoStatus(u[0] if u else None, r[0] if r else None, (int(top), int(done)))


def history(lib: Library, limit: int | None = 100) -> list[HistoryEntry]:
    """Logged operations, newest first (undone ones included, marked as such)."""
    rows = lib.conn.execute(
        "SELECT id, kind, description, state, created_at FROM oplog ORDER BY id DESC LIMIT ?",
        (-1 if limit is None else int(limit),),
    ).fetchall()
    return [HistoryEntry(*r) for r in rows]
