"""Storage faults: full and read-only disks, locks held by other programs, a library that
vanishes or was never a library. Each failure is one clear line, nothing stored is lost,
and the command can simply be run again.

Full and read-only disks are real: a small tmpfs mounted for the test (needs root;
skipped otherwise).
"""

from __future__ import annotations

import errno
import gc
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fake_scan import FakeAnalyzer, new_library, use_test_model
from PIL import Image

from faceapp.cli import main
from faceapp.engine import album, library_schema, people, pipeline, scan_decode
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import NewFace
from faceapp.engine.storage import explain


def photos(folder: Path, n: int, start: int = 0, size: int = 200) -> list[Path]:
    """``n`` distinct noise JPEGs (the fake analyzer finds one face in each)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + n):
        pixels = np.random.default_rng(i).integers(0, 255, (size, size, 3), np.uint8)
        path = folder / f"p{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        out.append(path)
    return out


@pytest.fixture
def fake_analyzer(monkeypatch):
    """``faceapp scan`` with the fast fake analyzer and a test model (no network weights)."""

    def analyzer_for_library(lib, device="auto", weights_path=None):
        if lib.active_model() is None:
            use_test_model(lib)
        return FakeAnalyzer()

    monkeypatch.setattr(pipeline, "analyzer_for_library", analyzer_for_library)


MOUNT_SOURCE = "faceapp-test-disk-"  # + the pid of the test process that mounted it


def unmount_stale_disks() -> None:
    """Unmount the small disks (and their read-only views) of test runs that were killed.

    A killed run never reaches its teardown; its mounts are known by their source name,
    which carries the mounting process's id, so a live run's disks are left alone.
    """
    for line in Path("/proc/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        if not source.startswith(MOUNT_SOURCE):
            continue
        pid = int(source.removeprefix(MOUNT_SOURCE))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            target = target.encode().decode("unicode_escape")  # /proc/mounts escapes spaces
            subprocess.run(["umount", "-l", target], check=False)
        except PermissionError:  # alive, another user's
            pass


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MB tmpfs (room for a 4 MB journal): a real disk to fill up or make read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    unmount_stale_disks()
    source = f"{MOUNT_SOURCE}{os.getpid()}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", source, str(mount)])
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` up to ``leave`` free bytes with a ballast file."""
    ballast = disk / "ballast"
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(ballast, "ab") as f:
        try:
            f.write(b"\0" * max(0, free - leave))
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return ballast


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def label_first_face(path: Path) -> dict[int, str]:
    lib = Library(path, create=False)
    face = lib.faces()[0]
    people.create_person(lib, "Anna", [face.id])
    labels = dict(
        lib.conn.execute("SELECT f.id, p.name FROM faces f JOIN people p ON p.id = f.person_id")
    )
    lib.close()
    return labels


def labels_of(path: Path) -> dict[int, str]:
    lib = Library(path, create=False)
    try:
        return dict(
            lib.conn.execute("SELECT f.id, p.name FROM faces f JOIN people p ON p.id = f.person_id")
        )
    finally:
        lib.close()


# ----------------------------------------------------------------------------- full disk


def test_scan_on_a_disk_that_fills_up_stops_with_one_line_and_resumes(
    tmp_path, small_disk, fake_analyzer, capsys
):
    folder = tmp_path / "photos"
    photos(folder, 4)
    lib_path = small_disk / "lib.sqlite"
    assert run_cli(capsys, "scan", folder, "--library", lib_path)[0] == 0
    labels = label_first_face(lib_path)
    photos(folder, 60, start=4, size=400)  # crops + embeddings: far more than the room left
    ballast = fill(small_disk, leave=60_000)
    code, _, err = run_cli(capsys, "scan", folder, "--library", lib_path)
    assert code == 1
    assert "disk holding" in one_line(err) and "is full" in err and "free some space" in err
    ballast.unlink()
    code, out, err = run_cli(capsys, "scan", folder, "--library", lib_path)
    assert code == 0 and "0 errors" in out, err
    lib = Library(lib_path, create=False)
    assert lib.counts()["photos"] == 64 and lib.counts()["faces"] == 64
    assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    lib.close()
    assert labels_of(lib_path) == labels


@pytest.mark.parametrize("command", [["people"], ["faces"], ["name", "p1", "Bea"]])
def test_commands_on_a_full_disk_name_the_cause(
    tmp_path, small_disk, fake_analyzer, capsys, command
):
    folder = tmp_path / "photos"
    photos(folder, 3)
    lib_path = small_disk / "lib.sqlite"
    assert run_cli(capsys, "scan", folder, "--library", lib_path)[0] == 0
    labels = label_first_face(lib_path)
    fill(small_disk)
    code, _, err = run_cli(capsys, *command, "--library", lib_path)
    if command[0] != "name" and code == 0:
        return  # a read that needs no room at all is fine too
    assert code == 1 and "is full" in one_line(err), err
    (small_disk / "ballast").unlink()
    assert labels_of(lib_path) == labels


def test_durable_commit_that_hits_a_full_disk_loses_nothing(tmp_path, monkeypatch):
    """SQLite's own page limit as a fault injector: the edit fails whole, with the reason."""
    lib = new_library(tmp_path / "lib.sqlite", tmp_path)
    lib.store_photo(
        "a.jpg",
        size=1,
        mtime_ns=1,
        width=9,
        height=9,
        content_hash="h",
        faces=[NewFace((1, 1, 5, 5), [[1, 1]] * 5, 0.9, b"jpeg", np.ones(512, np.float32))],
        model_id=lib.active_model().id,
    )
    people.create_person(lib, "Anna", [lib.faces()[0].id])
    pages = lib.conn.execute("PRAGMA page_count").fetchone()[0]
    lib.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(LibraryError, match="is full"), lib.transaction() as c:
        c.execute("INSERT INTO meta(key, value) VALUES ('big', ?)", ("x" * 200_000,))
    assert [p.name for p in album.groups(lib) if p.kind == "person"] == ["Anna"]


# ----------------------------------------------------------------------------- read-only


def test_read_only_data_folder_does_not_stop_a_read(
    tmp_path, small_disk, fake_analyzer, capsys, monkeypatch
):
    folder = tmp_path / "photos"
    photos(folder, 2)
    lib_path = tmp_path / "lib.sqlite"
    monkeypatch.setenv("FACEAPP_DATA_DIR", str(small_disk / "data"))
    assert run_cli(capsys, "scan", folder, "--library", lib_path)[0] == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, out, err = run_cli(capsys, "people", "--library", lib_path)
    assert code == 0 and err == "" and "Unknown" in out, (out, err)


def test_library_on_a_read_only_disk_says_so(tmp_path, small_disk, fake_analyzer, capsys):
    folder = tmp_path / "photos"
    photos(folder, 2)
    lib_path = small_disk / "lib.sqlite"
    assert run_cli(capsys, "scan", folder, "--library", lib_path)[0] == 0
    gc.collect()
    view = tmp_path / "read-only-view"
    view.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(small_disk), str(view)], check=True)
    try:
        code, _, err = run_cli(capsys, "name", "c1", "Anna", "--library", view / "lib.sqlite")
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    assert code == 1 and "read-only" in one_line(err), err


def test_permission_and_disk_errors_are_explained():
    """Fault injection for what root cannot provoke here (permissions) and odd errnos."""
    no_perm = explain(PermissionError(errno.EACCES, "Permission denied", "/x/lib.sqlite"), "/x")
    assert "no permission to write /x/lib.sqlite" in no_perm
    assert "full" in explain(OSError(errno.ENOSPC, "No space left on device"), "/tmp/l")
    assert "read-only" in explain(OSError(errno.EROFS, "Read-only file system"), "/tmp/l")
    assert explain(ValueError("bug"), "/tmp/l") is None


# ----------------------------------------------------------------------------- locks

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def test_a_lock_held_by_another_program_is_named(tmp_path, capsys, monkeypatch):
    path = tmp_path / "lib.sqlite"
    new_library(path, tmp_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), "5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(library_schema, "BUSY_TIMEOUT_MS", 300)
        code, _, err = run_cli(capsys, "people", "--library", path)
        assert code == 1 and "locked by another program" in one_line(err), err
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------- never replaced


def test_an_empty_library_file_is_an_error_never_a_new_library(tmp_path, fake_analyzer, capsys):
    folder = tmp_path / "photos"
    photos(folder, 2)
    lib_path = tmp_path / "lib.sqlite"
    assert run_cli(capsys, "scan", folder, "--library", lib_path)[0] == 0
    gc.collect()  # that scan's connection closes, as when its process ends
    os.truncate(lib_path, 0)
    for command in (["people"], ["faces"], ["name", "c11", "X"], ["scan", folder]):
        code, out, err = run_cli(capsys, *command, "--library", lib_path)
        assert code == 1 and "is empty (0 bytes)" in one_line(err) and out == "", command
        assert lib_path.stat().st_size == 0
    with pytest.raises(LibraryError, match="empty"):
        Library(lib_path)


def test_a_foreign_file_is_refused_and_left_alone(tmp_path, capsys):
    path = tmp_path / "notes.sqlite"
    path.write_text("my shopping list\n")
    code, _, err = run_cli(capsys, "people", "--library", path)
    assert code == 1 and "not a Face Album library" in one_line(err)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.commit()
    code, _, err = run_cli(capsys, "faces", "--library", other)
    assert code == 1 and "not a Face Album library" in one_line(err)
    assert path.read_text() == "my shopping list\n"


def test_a_missing_library_is_only_created_by_a_scan(tmp_path, capsys):
    path = tmp_path / "gone.sqlite"
    code, _, err = run_cli(capsys, "people", "--library", path)
    assert code == 1 and "no library at" in one_line(err) and not path.exists()
    with pytest.raises(LibraryError, match="no library at"):
        Library(path, create=False)


def test_a_library_deleted_during_a_scan_stops_the_scan(tmp_path, fake_analyzer, capsys):
    folder = tmp_path / "photos"
    photos(folder, 30)
    lib_path = tmp_path / "lib.sqlite"
    real_scan = pipeline.scan

    def scan_then_delete(lib, root, analyzer, progress=None, **kw):
        def deleting(p):
            if p.done == 8:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{lib_path}{suffix}").unlink(missing_ok=True)

        return real_scan(lib, root, analyzer, progress=deleting, **kw)

    pipeline.scan, saved = scan_then_delete, pipeline.scan
    try:
        code, out, err = run_cli(capsys, "scan", folder, "--library", lib_path)
    finally:
        pipeline.scan = saved
    assert code == 1 and "was deleted or replaced while in use" in one_line(err)
    assert "photos scanned" not in out


def test_a_foreign_journal_file_gets_a_hint_and_does_no_harm(tmp_path, capsys):
    mine = tmp_path / "mine.sqlite"
    new_library(mine, tmp_path).close()
    before = mine.read_bytes()
    other = sqlite3.connect(tmp_path / "other.sqlite", isolation_level=None)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("PRAGMA wal_autocheckpoint = 0")
    other.execute("CREATE TABLE t(x)")
    for _ in range(50):
        other.execute("INSERT INTO t VALUES (?)", ("x" * 400,))
    Path(f"{mine}-wal").write_bytes(Path(f"{tmp_path / 'other.sqlite'}-wal").read_bytes())
    code, _, err = run_cli(capsys, "people", "--library", mine)
    assert code == 1 and "-wal may belong to another copy" in one_line(err), err
    gc.collect()
    assert mine.read_bytes() == before  # the foreign pages were not folded into the file
    Path(f"{mine}-wal").unlink()
    assert run_cli(capsys, "people", "--library", mine)[0] == 0


# ----------------------------------------------------------------------------- concurrency

CREATOR = textwrap.dedent(
    """
    import sys, time
    from faceapp.engine.library import Library
    path, start = sys.argv[1], float(sys.argv[2])
    while time.time() < start:
        pass
    lib = Library(path)
    lib.set_active_model(lib.add_model(name="base", source="casia-webface", origin="x",
        sha256="f" * 64, preprocess="fixed", threshold=1.0, threshold_source="t"))
    print(lib.active_model().id)
    """
)


def test_two_processes_creating_one_library_at_once_share_it(tmp_path):
    import time

    for trial in range(6):
        path = tmp_path / f"lib{trial}.sqlite"
        start = time.time() + 1.5  # both interpreters are up by then
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CREATOR, str(path), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        assert {out.strip() for out, _ in results} == {"1"}
        lib = Library(path, create=False)
        assert len(lib.models()) == 1
        assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        lib.close()
        assert sorted(p.name for p in tmp_path.iterdir() if "creating" in p.name) == []


def test_registering_the_base_model_twice_keeps_one_row(tmp_path):
    lib = new_library(tmp_path / "lib.sqlite", tmp_path)
    first = lib.active_model()
    again = lib.add_model(
        name="test",
        source=first.source,
        origin="elsewhere",
        sha256=first.sha256,
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    assert again == first.id and len(lib.models()) == 1


def test_upgrade_merges_duplicate_base_models(tmp_path, monkeypatch):
    """A library from before the fix, with the duplicate row the race made."""
    path = tmp_path / "lib.sqlite"
    lib = new_library(path, tmp_path)
    photo = lib.store_photo(
        "a.jpg",
        size=1,
        mtime_ns=1,
        width=9,
        height=9,
        content_hash="h",
        faces=[],
        model_id=lib.active_model().id,
    )
    assert photo
    with lib.transaction() as c:
        c.execute("DROP INDEX models_base")
        c.execute(
            "INSERT INTO models SELECT 2, name, source, origin, sha256, path, preprocess,"
            " threshold, threshold_source, status, metadata, created_at FROM models"
        )
        c.execute("UPDATE meta SET value = '2' WHERE key = 'active_model'")
        c.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    lib.close()
    # the columns of the next step are already there (the file was made by this version)
    monkeypatch.setitem(library_schema.MIGRATIONS, 2, "SELECT 1")
    upgraded = Library(path)
    assert [m.id for m in upgraded.models()] == [1] and upgraded.active_model().id == 1


def test_a_second_scan_at_the_same_time_skips_what_the_first_stored(tmp_path):
    """The second scan starts once the first has stored a few photos (as when a user
    starts a CLI scan while the GUI scans): it does not analyse or store them again."""
    import threading

    folder = tmp_path / "photos"
    photos(folder, 40)
    path = tmp_path / "lib.sqlite"
    new_library(path, folder).close()
    first, second = FakeAnalyzer(), FakeAnalyzer()
    late_reports = []
    late = threading.Thread(
        target=lambda: late_reports.append(pipeline.scan(Library(path), folder, second))
    )

    def start_the_second(p):
        if p.done >= 12 and late.ident is None:
            late.start()

    pipeline.scan(Library(path), folder, first, progress=start_the_second)
    late.join(timeout=120)
    lib = Library(path)
    assert lib.counts()["faces"] == 40
    max_id = lib.conn.execute("SELECT MAX(id) FROM faces").fetchone()[0]
    assert max_id == 40  # no face row made twice
    assert second.calls <= 40 - 12  # the 12 stored before it started are not redone
    assert late_reports[0].skipped_unchanged >= 12


def test_files_that_vanish_mid_scan_leave_no_error_rows(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    files = photos(folder, 20)
    lib = new_library(tmp_path / "lib.sqlite", folder)
    real_decode = scan_decode.decode_file

    def decode_after_delete(path, rel, *rest):
        if int(path.stem[1:]) >= 5:
            path.unlink(missing_ok=True)
        return real_decode(path, rel, *rest)

    monkeypatch.setattr(scan_decode, "decode_file", decode_after_delete)
    pipeline.scan(lib, folder, FakeAnalyzer())
    monkeypatch.undo()
    assert lib.photo_errors() == []
    lib.store_photo_error("old/gone.jpg", size=1, mtime_ns=1, reason="cannot read")
    report = pipeline.scan(lib, folder, FakeAnalyzer())
    assert lib.photo_errors() == [] and report.errors == []
    assert lib.counts()["photos"] == sum(1 for f in files if f.exists())
