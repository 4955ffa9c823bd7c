import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from faceapp.engine import (
    library_schema,
)
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import NewFace
from faceapp.engine.library_schema import SCHEMA_VERSION


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=512).astype(np.float32)
    return v / np.linalg.norm(v)


def face(box=(10, 10, 60, 70), seed=0) -> NewFace:
    return NewFace(
        box=box, landmarks=[[20, 30]] * 5, prob=0.99, crop_jpeg=b"jpeg", embedding=unit(seed)
    )


@pytest.fixture
def lib(tmp_path):
    lib = Library(tmp_path / "lib.sqlite", root=tmp_path)
    mid = lib.add_model(
        name="base",
        source="test",
        origin="-",
        sha256="abc",
        preprocess="fixed",
        threshold=1.1,
        threshold_source="test",
    )
    lib.set_active_model(mid)
    return lib


def store(lib, path="a.jpg", faces=(), size=100, mtime=1):
    return lib.store_photo(
        path,
        size=size,
        mtime_ns=mtime,
        width=200,
        height=100,
        content_hash=path,
        faces=list(faces),
        model_id=lib.active_model().id,
    )


def test_new_library_uses_wal_and_records_schema_version(lib):
    assert lib.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert lib.get_meta("schema_version") == str(SCHEMA_VERSION)


def test_store_photo_keeps_faces_and_embeddings(lib):
    store(lib, faces=[face(seed=1), face((100, 10, 150, 70), seed=2)])
    faces = lib.faces()
    assert [f.photo_path for f in faces] == ["a.jpg", "a.jpg"]
    ids, vectors = lib.embeddings()
    assert list(ids) == [f.id for f in faces]
    np.testing.assert_allclose(vectors[0], unit(1))
    assert lib.counts()["faces"] == 2


def test_changed_photo_keeps_the_confirmed_person_of_an_overlapping_face(lib):
    store(lib, faces=[face()])
    fid = lib.faces()[0].id
    with lib.transaction() as c:
        pid = c.execute("INSERT INTO people(name, created_at) VALUES ('Anna', 0)").lastrowid
        c.execute("UPDATE faces SET person_id = ? WHERE id = ?", (pid, fid))
        c.execute("INSERT INTO rejections(face_id, person_id) VALUES (?, ?)", (fid, pid))
    store(lib, faces=[face((12, 11, 61, 72), seed=3)], size=101, mtime=2)
    new = lib.faces()
    assert len(new) == 1 and new[0].id != fid
    assert new[0].person_id == pid
    assert lib.conn.execute("SELECT COUNT(*) FROM rejections").fetchone()[0] == 1


def test_failed_transaction_leaves_nothing_behind(lib):
    with pytest.raises(RuntimeError), lib.transaction() as c:
        c.execute("INSERT INTO people(name, created_at) VALUES ('Ghost', 0)")
        raise RuntimeError("boom")
    assert lib.counts()["people"] == 0


def test_missing_photo_leaves_views_and_returns_when_moved(lib):
    pid = store(lib, faces=[face()])
    lib.mark_missing(["a.jpg"])
    assert lib.faces() == [] and len(lib.faces(include_missing=True)) == 1
    lib.move_photo(pid, "b/a.jpg", size=100, mtime_ns=5)
    assert [f.photo_path for f in lib.faces()] == ["b/a.jpg"]


def test_active_model_cannot_switch_to_incomplete_version(lib):
    store(lib, faces=[face()])
    new = lib.add_model(
        name="ft",
        source="finetuned",
        origin="-",
        sha256="def",
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    with pytest.raises(LibraryError, match="lacks embeddings"):
        lib.set_active_model(new)
    ids, _ = lib.embeddings()
    lib.store_embeddings(new, ids, np.stack([unit(9)]))
    lib.set_active_model(new)
    assert lib.active_model().id == new


def test_newer_library_is_refused(tmp_path):
    path = tmp_path / "lib.sqlite"
    Library(path).set_meta("schema_version", str(SCHEMA_VERSION + 1))
    with pytest.raises(LibraryError, match="newer Face Album"):
        Library(path)


def test_not_a_library_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE x (y)")
    conn.commit()
    conn.close()
    with pytest.raises(LibraryError, match="not a Face Album library"):
        Library(path)
    (tmp_path / "text.sqlite").write_text("hello, not a database at all" * 100)
    with pytest.raises(LibraryError):
        Library(tmp_path / "text.sqlite")


# ----------------------------------------------------------------------------- two processes

HOLDER = textwrap.dedent(
    """
    import sys, time
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    with lib.transaction() as c:
        c.execute("INSERT INTO meta(key, value) VALUES ('holder', 'yes')")
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    """
)

WRITER = textwrap.dedent(
    """
    import sys
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    for i in range(int(sys.argv[3])):
        with lib.transaction() as c:
            c.execute("INSERT INTO people(name, created_at) VALUES (?, 0)", (f"{sys.argv[2]}{i}",))
            c.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
    """
)


def hold_write_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_writer_that_must_wait_waits_then_fails_with_a_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "lib.sqlite"
    Library(path).close()
    holder = hold_write_lock(path, 4.0)
    try:
        monkeypatch.setattr(library_schema, "BUSY_TIMEOUT_MS", 1000)
        lib = Library(path)
        assert lib.counts()["people"] == 0  # readers are never blocked (WAL)
        t0 = time.perf_counter()
        with pytest.raises(LibraryError, match="busy: another process is writing") as err:
            lib.set_meta("gui", "edit")
        assert 0.9 < time.perf_counter() - t0 < 3.5
        assert "\n" not in str(err.value)
        monkeypatch.setattr(library_schema, "BUSY_TIMEOUT_MS", 20_000)
        patient = Library(path)
        t0 = time.perf_counter()
        patient.set_meta("gui", "edit")  # waits for the holder, then writes
        assert time.perf_counter() - t0 > 1.0
    finally:
        holder.wait(timeout=30)
    assert patient.get_meta("holder") == "yes" and patient.get_meta("gui") == "edit"
    assert patient.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "lib.sqlite"
    Library(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "150"])
        for tag in ("gui-", "cli-")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lib = Library(path)
    names = {r[0] for r in lib.conn.execute("SELECT name FROM people")}
    assert names == {f"{t}{i}" for t in ("gui-", "cli-") for i in range(150)}
    assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
