"""What a library must still be after a kill: intact, every face once, no label lost.

The checks of the kill tests (:mod:`kill_harness`): faces compared with a clean
reference scan by content hash and box, labels and rejections made before the kill,
the identity state that an operation changes as a whole or not at all; and the faces
with their embeddings, photo by photo, for two scans of one folder made two ways.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceapp.engine.boxes import iou
from faceapp.engine.library import Library

BOX_TOLERANCE = 1.0  # display px: resumed scans batch photos differently


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _round_box(box: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 1) for v in box)


def faces_by_content(conn: sqlite3.Connection) -> dict[str, list[tuple[float, ...]]]:
    """content hash -> sorted boxes, for photos stored as ok (one entry per photo row)."""
    out: dict[str, list] = {}
    photos = conn.execute(
        "SELECT id, content_hash FROM photos WHERE status = 'ok' AND content_hash IS NOT NULL"
    ).fetchall()
    boxes: dict[int, list] = {}
    for pid, x1, y1, x2, y2 in conn.execute("SELECT photo_id, x1, y1, x2, y2 FROM faces"):
        boxes.setdefault(pid, []).append((x1, y1, x2, y2))
    for pid, h in photos:
        out.setdefault(h, []).append(sorted(boxes.get(pid, [])))
    return out


def stored_faces(conn: sqlite3.Connection) -> dict[int, tuple[str, tuple[float, ...]]]:
    """face id -> (content hash, box) for every face (missing photos too)."""
    rows = conn.execute(
        "SELECT f.id, p.content_hash, f.x1, f.y1, f.x2, f.y2 FROM faces f"
        " JOIN photos p ON p.id = f.photo_id"
    ).fetchall()
    return {r[0]: (r[1], _round_box(r[2:])) for r in rows}


@dataclass
class Labels:
    """The user's work: confirmed faces, names, rejections."""

    confirmed: dict[int, str] = field(default_factory=dict)  # face id -> person name
    names: set[str] = field(default_factory=set)
    rejections: set[tuple[int, str]] = field(default_factory=set)  # (face id, person name)

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> Labels:
        names = dict(conn.execute("SELECT id, name FROM people"))
        return cls(
            confirmed={
                f: names[p]
                for f, p in conn.execute(
                    "SELECT id, person_id FROM faces WHERE person_id IS NOT NULL"
                )
            },
            names=set(names.values()),
            rejections={
                (f, names[p]) for f, p in conn.execute("SELECT face_id, person_id FROM rejections")
            },
        )

    def lost_in(self, after: Labels) -> int:
        """How many labels, names and rejections of ``self`` are not in ``after``."""
        lost = sum(1 for f, n in self.confirmed.items() if after.confirmed.get(f) != n)
        lost += len(self.names - after.names)
        return lost + len(self.rejections - after.rejections)


def identity_state(conn: sqlite3.Connection) -> tuple:
    """Everything an identity operation may change (timestamps aside)."""
    return (
        tuple(conn.execute("SELECT id, person_id, cluster_id FROM faces ORDER BY id")),
        tuple(conn.execute("SELECT id, name, hidden FROM people ORDER BY id")),
        tuple(conn.execute("SELECT * FROM rejections ORDER BY 1, 2")),
        tuple(conn.execute("SELECT * FROM cluster_rejections ORDER BY 1, 2")),
        tuple(conn.execute("SELECT id, kind, description, state FROM oplog ORDER BY id")),
    )


@dataclass
class Check:
    integrity_ok: bool
    duplicates: int
    lost_faces: int
    wrong_faces: int
    labels_lost: int
    unembedded: int
    details: list[str]

    @property
    def ok(self) -> bool:
        return (
            self.integrity_ok
            and not self.duplicates
            and not self.lost_faces
            and not self.wrong_faces
            and not self.labels_lost
            and not self.unembedded
        )


def check_library(
    path: Path,
    reference: dict[str, list[tuple[float, ...]]],
    copies: Counter,
    faces_before: dict[int, tuple[str, tuple[float, ...]]],
    labels_before: Labels,
) -> Check:
    """The checks listed in the module docstring, against the reference scan."""
    details: list[str] = []
    conn = connect(path)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if not integrity or fk:
            details.append(f"integrity {integrity}, foreign keys {fk[:3]}")
        stored = faces_by_content(conn)
        duplicates = wrong = 0
        for h, photos in stored.items():
            if len(photos) > copies.get(h, 1):
                duplicates += len(photos) - copies.get(h, 1)
                details.append(f"photo {h[:8]} stored {len(photos)} times")
            want = reference.get(h)
            for boxes in photos:
                if want is None or not _same_boxes(boxes, want):
                    wrong += 1
                    details.append(f"photo {h[:8]}: {len(boxes)} faces, reference {want}")
                for i in range(len(boxes)):
                    for j in range(i + 1, len(boxes)):
                        if iou(boxes[i], boxes[j]) > 0.9:
                            duplicates += 1
                            details.append(f"photo {h[:8]}: face stored twice")
        now = stored_faces(conn)
        lost = [f for f in faces_before if f not in now]
        if lost:
            details.append(f"faces gone: {lost[:10]}")
        labels_lost = labels_before.lost_in(Labels.read(conn))
        if labels_lost:
            details.append(f"{labels_lost} labels lost")
        active = conn.execute("SELECT value FROM meta WHERE key = 'active_model'").fetchone()
        unembedded = 0
        if active:
            unembedded = conn.execute(
                "SELECT COUNT(*) FROM faces f WHERE NOT EXISTS (SELECT 1 FROM embeddings e"
                " WHERE e.face_id = f.id AND e.model_id = ?)",
                (int(active[0]),),
            ).fetchone()[0]
            status = conn.execute(
                "SELECT status FROM models WHERE id = ?", (int(active[0]),)
            ).fetchone()
            if unembedded or status != ("ready",):
                details.append(f"active model {active[0]} {status}: {unembedded} faces lack it")
                unembedded = max(unembedded, 1)
    finally:
        conn.close()
    return Check(
        integrity and not fk, duplicates, len(lost), wrong, labels_lost, unembedded, details
    )


def _same_boxes(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        max(abs(x - y) for x, y in zip(p, q, strict=True)) <= BOX_TOLERANCE
        for p, q in zip(a, b, strict=True)
    )


def faces_with_embeddings(lib: Library) -> dict[str, list[tuple[tuple, np.ndarray]]]:
    """Each photo's (box, embedding) pairs, sorted by box: what a local scan and a
    distributed scan of one folder must agree on."""
    ids, vectors = lib.embeddings()
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    out: dict[str, list] = {}
    for f in lib.faces():
        out.setdefault(f.photo_path, []).append((tuple(f.box), by_id[f.id]))
    return {k: sorted(v, key=lambda fv: fv[0]) for k, v in out.items()}
