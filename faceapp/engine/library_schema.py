"""The library file's format: its schema, the upgrades between versions, and its making.

A library file is never made by accident: :func:`create_library_file` builds it under
a temporary name and links it into place whole, so an empty or half-made file where a
library was expected is an error, and two processes creating one library at once end
up sharing one. Upgrades (:data:`MIGRATIONS`) run after a backup, one version at a time.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

from faceapp.engine.files import fsync_dir
from faceapp.engine.storage import LibraryError

SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE photos (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    path         TEXT NOT NULL UNIQUE,       -- relative to the library root, '/' separators
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    width        INTEGER,                    -- display size, after EXIF rotation
    height       INTEGER,
    content_hash TEXT,                       -- finds moved/renamed files again
    status       TEXT NOT NULL CHECK (status IN ('ok', 'error', 'missing')),
    error        TEXT,
    scanned_at   REAL NOT NULL,
    taken_at     TEXT                        -- local 'YYYY-MM-DDTHH:MM:SS': EXIF, else file time
);
CREATE INDEX photos_hash ON photos(content_hash);
CREATE TABLE people (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    hidden     INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    birth_date TEXT,                         -- 'YYYY-MM-DD': no face before it is theirs
    cover_face_id INTEGER REFERENCES faces(id) ON DELETE SET NULL
);
CREATE TABLE clusters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- stable across re-clustering (by overlap)
    created_at REAL NOT NULL
);
CREATE TABLE faces (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_id   INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    landmarks  TEXT NOT NULL,                -- JSON [[x, y] * 5], display pixels
    prob       REAL NOT NULL,
    person_id  INTEGER REFERENCES people(id) ON DELETE SET NULL,   -- confirmed by the user
    cluster_id INTEGER REFERENCES clusters(id) ON DELETE SET NULL, -- automatic
    created_at REAL NOT NULL,
    manual     INTEGER NOT NULL DEFAULT 0    -- drawn by the user: kept when the photo is rescanned
);
CREATE TABLE face_crops (                   -- apart from faces: keeps face rows small and fast
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    jpeg    BLOB NOT NULL                    -- 160x160 JPEG of the aligned crop
);
CREATE INDEX faces_photo ON faces(photo_id);
CREATE INDEX faces_person ON faces(person_id);
CREATE INDEX faces_cluster ON faces(cluster_id);
CREATE TABLE models (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL,
    source           TEXT NOT NULL,          -- 'casia-webface', 'vggface2', 'user', 'finetuned'
    origin           TEXT NOT NULL,          -- where the weights came from (path or URL)
    sha256           TEXT NOT NULL,
    path             TEXT,                   -- state dict file for fine-tuned versions
    preprocess       TEXT NOT NULL,          -- 'fixed' or 'prewhiten'
    threshold        REAL NOT NULL,          -- squared L2 on unit vectors
    threshold_source TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('building', 'ready')),
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       REAL NOT NULL
);
CREATE TABLE embeddings (
    face_id  INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    vector   BLOB NOT NULL,                  -- float32[512], unit length
    PRIMARY KEY (face_id, model_id)
) WITHOUT ROWID;
CREATE INDEX embeddings_model ON embeddings(model_id);
CREATE TABLE rejections (                   -- "not this person", remembered forever
    face_id   INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    PRIMARY KEY (face_id, person_id)
) WITHOUT ROWID;
CREATE INDEX rejections_person ON rejections(person_id);
CREATE TABLE cluster_rejections (           -- "not in this cluster": re-clustering respects it
    face_id    INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
    PRIMARY KEY (face_id, cluster_id)
) WITHOUT ROWID;
CREATE INDEX cluster_rejections_cluster ON cluster_rejections(cluster_id);
CREATE UNIQUE INDEX models_base ON models(sha256, source) WHERE path IS NULL;
CREATE TABLE oplog (                        -- identity operations, for undo/redo across restarts
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    payload     TEXT NOT NULL,               -- JSON: what to apply to undo and to redo
    state       TEXT NOT NULL CHECK (state IN ('done', 'undone')),
    created_at  REAL NOT NULL
);
"""

SMALL_MATCHES = """
CREATE TABLE IF NOT EXISTS small_matches (  -- small faces measured at their own resolution
    face_id   INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    model_id  INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    distance  REAL NOT NULL,                 -- squared L2 to the nearest degraded face
    compared  TEXT NOT NULL,                 -- JSON: the person's faces it was measured to
    PRIMARY KEY (face_id, model_id, person_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS small_matches_person ON small_matches(person_id);
"""
SCHEMA += SMALL_MATCHES

# Migrations from version N to N+1, applied in order after a backup.
MIGRATIONS: dict[int, str] = {
    # One row per base model: two processes registering it at once made two. Their
    # embeddings are identical (same weights); the lower id keeps them.
    1: """
    INSERT OR IGNORE INTO embeddings(face_id, model_id, vector)
        SELECT e.face_id, k.keep, e.vector FROM embeddings e JOIN
        (SELECT m.id AS dup, (SELECT MIN(o.id) FROM models o WHERE o.path IS NULL
            AND o.sha256 = m.sha256 AND o.source = m.source) AS keep
         FROM models m WHERE m.path IS NULL) k ON k.dup = e.model_id WHERE k.dup != k.keep;
    UPDATE meta SET value = (SELECT MIN(o.id) FROM models o JOIN models a
            ON a.id = CAST(meta.value AS INTEGER)
            WHERE o.path IS NULL AND a.path IS NULL AND o.sha256 = a.sha256
            AND o.source = a.source)
        WHERE key = 'active_model' AND EXISTS (SELECT 1 FROM models a
            WHERE a.id = CAST(meta.value AS INTEGER) AND a.path IS NULL);
    DELETE FROM models WHERE path IS NULL AND id > (SELECT MIN(o.id) FROM models o
        WHERE o.path IS NULL AND o.sha256 = models.sha256 AND o.source = models.source);
    CREATE UNIQUE INDEX models_base ON models(sha256, source) WHERE path IS NULL
    """,
    2: "ALTER TABLE photos ADD COLUMN taken_at TEXT;"
    " ALTER TABLE faces ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;"
    " ALTER TABLE people ADD COLUMN birth_date TEXT;"
    " ALTER TABLE people ADD COLUMN cover_face_id INTEGER"
    " REFERENCES faces(id) ON DELETE SET NULL",
    3: SMALL_MATCHES,
}


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid an INSERT on ``cur`` just made."""
    if cur.lastrowid is None:
        raise LibraryError("the insert made no row")
    return cur.lastrowid


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the library's settings (WAL, busy timeout, foreign keys)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def run_script(c: sqlite3.Connection, script: str) -> None:
    """Run the statements of a script one by one (execute takes one at a time)."""
    for statement in script.split(";"):
        if statement.strip():
            c.execute(statement)


def create_library_file(path: Path) -> bool:
    """Make a new, complete library file at ``path``; False if one appeared there first.

    The file is built under a temporary name and hard-linked into place, which fails
    when ``path`` exists: a second process creating the same library at the same
    instant opens the first one's file instead of clashing on half a schema.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.creating")
    try:
        conn = connect(tmp)
        with conn:
            run_script(conn, SCHEMA)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        conn.close()  # folds the journal into the file and removes it
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this filesystem: a small window remains
            if path.exists():
                return False
            os.replace(tmp, path)
        fsync_dir(path.parent)
        return True
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
