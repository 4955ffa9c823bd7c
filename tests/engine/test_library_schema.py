"""Upgrades of the library file: a backup first, every label kept, a failed upgrade undone,
and an older app refusing a newer library.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fake_scan import (
    new_library,
)

from faceapp.engine import (
    library_schema,
    people,
)
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import NewFace

# ----------------------------------------------------------------------------- upgrades


def populated_library(path: Path) -> Library:
    lib = new_library(path, path.parent)
    v = np.ones(512, np.float32) / np.sqrt(512)
    lib.store_photo(
        "a.jpg",
        size=1,
        mtime_ns=1,
        width=10,
        height=10,
        content_hash="h",
        faces=[NewFace((1, 1, 5, 5), [[1, 1]] * 5, 0.9, b"jpeg", v)],
        model_id=lib.active_model().id,
    )
    people.create_person(lib, "Anna", [lib.faces()[0].id])
    return lib


def snapshot(conn: sqlite3.Connection) -> dict:
    return {
        t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("photos", "faces", "people", "embeddings", "oplog")
    }


@pytest.mark.parametrize("start", [0, library_schema.SCHEMA_VERSION])
def test_migration_backs_the_library_up_first_and_keeps_every_label(tmp_path, monkeypatch, start):
    from faceapp.engine import backup

    path = tmp_path / "lib.sqlite"
    lib = populated_library(path)
    if start == 0:  # a library from before versions were recorded
        with lib.transaction() as c:
            c.execute("DELETE FROM meta WHERE key = 'schema_version'")
    before = snapshot(lib.conn)
    lib.close()
    current = library_schema.SCHEMA_VERSION
    migrations = {v: "CREATE TABLE IF NOT EXISTS settings (key TEXT)" for v in range(current)}
    migrations[current] = (
        "ALTER TABLE people ADD COLUMN note TEXT; CREATE INDEX people_name ON people(name)"
    )
    monkeypatch.setattr(library_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(library_schema, "MIGRATIONS", migrations)
    upgraded = Library(path)
    assert upgraded.get_meta("schema_version") == str(current + 1)
    assert upgraded.conn.execute("SELECT name, note FROM people").fetchall() == [("Anna", None)]
    after = snapshot(upgraded.conn)
    after["people"] = [row[:-1] for row in after["people"]]  # without the new column
    assert after == before
    backups = backup.backups(path)
    assert [b.reason for b in backups] == [f"before-upgrade-v{start}"]
    old = sqlite3.connect(backups[0].path)
    assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert snapshot(old) == before
    assert "note" not in {r[1] for r in old.execute("PRAGMA table_info(people)")}


def test_failed_migration_leaves_the_library_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "lib.sqlite"
    before = snapshot(populated_library(path).conn)
    current = library_schema.SCHEMA_VERSION
    monkeypatch.setattr(library_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(
        library_schema,
        "MIGRATIONS",
        {current: "ALTER TABLE people ADD COLUMN note TEXT; NOT SQL AT ALL"},
    )
    with pytest.raises(LibraryError, match="not a usable library"):
        Library(path)
    monkeypatch.setattr(library_schema, "SCHEMA_VERSION", current)
    again = Library(path)
    assert again.get_meta("schema_version") == str(current) and snapshot(again.conn) == before


def test_older_app_refuses_a_newer_library_from_the_cli(tmp_path, capsys):
    from faceapp.cli import main

    path = tmp_path / "lib.sqlite"
    populated_library(path).set_meta("schema_version", "99")
    assert main(["faces", "--library", str(path)]) == 1
    err = capsys.readouterr().err
    assert "newer Face Album" in err and "update" in err and err.count("\n") == 1
