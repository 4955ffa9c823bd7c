"""The operation log: every identity change as one row, so undo and redo survive restarts.

An operation builds a :class:`Changes` (the exact row changes: faces' person and
cluster before and after, people and clusters created or deleted, rejections added
or removed) and hands it to :func:`commit` inside its transaction, which applies
the "after" side and writes one ``oplog`` row. :func:`undo` applies the "before"
side of the latest done row and :func:`redo` the "after" side of the earliest
undone one, through the same code path. Undo is linear: a new operation drops
whatever had been undone.

The log lives in the library, so every process sees the same history: the GUI
reads :func:`undo_status` from here rather than keeping a stack of its own.
Imports no torch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field

from faceapp.engine.library import Library

OPLOG_KEEP = 1000  # operations kept for undo


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    kind: str
    description: str
    state: str  # 'done' | 'undone'
    created_at: float


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
    return int(cur.lastrowid)


def commit(c: sqlite3.Connection, kind: str, description: str, ch: Changes) -> str:
    """Apply an operation's changes and log it, inside the caller's transaction."""
    apply(c, ch, forward=True)
    _log(c, kind, description, ch)
    return description


def undo(lib: Library) -> str | None:
    """Undo the latest operation still done; returns its description (None: nothing)."""
    with lib.transaction() as c:
        row = c.execute(
            "SELECT id, description, payload FROM oplog WHERE state = 'done'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        apply(c, Changes.from_json(row[2]), forward=False)
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
        apply(c, Changes.from_json(row[2]), forward=True)
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
