"""Damage found and survived: the quick check on open, ``faceapp check``, rolling backups,
``faceapp restore``; label commits that reach the disk; leftovers of killed fine-tunes."""

from __future__ import annotations

import gc
import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
from damaged_library import built_library, labels_in, overwrite_page
from fake_scan import new_library

from faceapp.cli import main
from faceapp.engine import backup
from faceapp.engine.cluster import recluster
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.orphans import clean_finetune_orphans, models_dir
from faceapp.engine.storage import LibraryDamaged


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def damaged_at_end(tmp_path):
    path = tmp_path / "lib.sqlite"
    built_library(path).close()
    gc.collect()
    overwrite_page(path, -1)
    return path


def test_damage_at_the_end_is_found_on_open_and_nothing_is_written(damaged_at_end, capsys):
    before = damaged_at_end.read_bytes()
    for command in (["people"], ["faces"], ["name", "p1", "Ann"], ["undo"]):
        code, out, err = run_cli(capsys, *command, "--library", damaged_at_end)
        assert code == 1 and out == "", command
        assert "is damaged" in err and "faceapp restore" in err and err.count("\n") == 1, err
    gc.collect()
    assert damaged_at_end.read_bytes() == before
    with pytest.raises(LibraryDamaged):
        Library(damaged_at_end)


def test_check_finds_damage_in_the_middle_and_restore_brings_the_labels_back(tmp_path, capsys):
    path = tmp_path / "lib.sqlite"
    lib = built_library(path)
    backup.make_backup(lib, "after-edits")
    labels = labels_in(path)
    lib.close()
    gc.collect()
    assert run_cli(capsys, "check", "--library", path)[0] == 0
    overwrite_page(path, path.stat().st_size // 4096 // 2)
    code, out, _ = run_cli(capsys, "check", "--library", path)
    assert code == 1 and "damaged" in out and "faceapp restore --library" in out
    code, out, err = run_cli(capsys, "restore", "--library", path)
    assert code == 0, err
    assert "restored" in out and "damaged-" in out
    assert run_cli(capsys, "check", "--library", path)[0] == 0
    assert labels_in(path) == labels
    assert len(list(tmp_path.glob("lib.sqlite.damaged-*[0-9]"))) == 1  # kept, never deleted


def test_a_backup_of_a_damaged_library_fails_and_says_why(tmp_path):
    path = tmp_path / "lib.sqlite"
    built_library(path).close()
    gc.collect()
    overwrite_page(path, path.stat().st_size // 4096 // 2)
    lib = Library(path)  # the quick check does not read the middle of the file
    with pytest.raises(LibraryDamaged, match="found while backing it up"):
        backup.make_backup(lib, "after-edits")
    assert backup.backups(path) == []


def test_restore_refuses_a_sound_library_without_force(tmp_path, capsys):
    path = tmp_path / "lib.sqlite"
    lib = built_library(path, photos=5)
    backup.make_backup(lib, "after-edits")
    code, _, err = run_cli(capsys, "restore", "--library", path)
    assert code == 2 and "has no damage" in err and "--force" in err
    code, out, _ = run_cli(capsys, "restore", "--list", "--library", path)
    assert code == 0 and "after-edits" in out


def test_edits_from_the_cli_are_backed_up_and_backups_roll(tmp_path, capsys, monkeypatch):
    path = tmp_path / "lib.sqlite"
    built_library(path, photos=5).close()
    assert run_cli(capsys, "name", "Anna", "Ann", "--library", path)[0] == 0
    found = backup.backups(path)
    assert [b.reason for b in found] == ["after-edits"]
    assert run_cli(capsys, "name", "Ann", "Anne", "--library", path)[0] == 0
    assert len(backup.backups(path)) == 1  # at most one an hour
    monkeypatch.setattr(backup, "AFTER_EDITS_EVERY_S", 0.0)
    for name in ("A1", "A2", "A3", "A4", "A5"):
        assert run_cli(capsys, "name", "p1", name, "--library", path)[0] == 0
    assert len(backup.backups(path)) == backup.KEEP
    assert run_cli(capsys, "people", "--library", path)[0] == 0


def test_risky_operations_are_preceded_by_a_backup(tmp_path):
    path = tmp_path / "lib.sqlite"
    lib = built_library(path, photos=30)
    recluster(lib)
    assert [b.reason for b in backup.backups(path)] == ["before-recluster"]


def test_a_failed_backup_before_a_risky_operation_stops_it(tmp_path, monkeypatch):
    path = tmp_path / "lib.sqlite"
    lib = built_library(path, photos=30)
    blocker = tmp_path / "data-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(backup, "backup_dir", lambda p: blocker / "x")
    with pytest.raises(LibraryError, match=r"could not back up the library.*recluster was not"):
        recluster(lib)
    assert (
        lib.conn.execute("SELECT COUNT(*) FROM faces WHERE cluster_id IS NOT NULL").fetchone()[0]
        == 0
    )


# ----------------------------------------------------------------------------- power loss

SYNCS = textwrap.dedent(
    """
    import os, sys
    from faceapp.engine import people
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    ids = [f.id for f in lib.faces()]
    for i in range(3):  # like the GUI: one long-lived process, one edit after another
        os.getpid()  # a marker in the system call trace
        people.create_person(lib, f"P{i}", ids[40 + i : 41 + i])
    os.getpid()
    """
)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_every_label_commit_reaches_the_disk(tmp_path):
    path = tmp_path / "lib.sqlite"
    built_library(path, photos=50).close()
    trace = tmp_path / "trace"
    strace = ("strace", "-f", "-o", str(trace), "-e", "trace=getpid,fsync,fdatasync")
    subprocess.run(
        [*strace, sys.executable, "-c", SYNCS, str(path)],
        check=True,
        env=os.environ,
    )
    calls = [
        "sync" if "sync(" in line else "mark"
        for line in trace.read_text().splitlines()
        if "getpid()" in line or "sync(" in line
    ]
    marks = [i for i, c in enumerate(calls) if c == "mark"][-4:]
    per_edit = [calls[a:b].count("sync") for a, b in itertools.pairwise(marks)]
    assert len(per_edit) == 3 and min(per_edit) >= 1, per_edit


# ----------------------------------------------------------------------------- fine-tunes


def test_leftovers_of_a_fine_tune_killed_while_saving_go_on_the_next_start(tmp_path):
    from faceapp.engine.library import open_library

    path = tmp_path / "lib.sqlite"
    lib = new_library(path, tmp_path)
    folder = models_dir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    orphan = folder / "finetuned-20260101-000000-aaaaaaaaaaaa.pt"
    orphan.write_bytes(b"\0" * 1000)  # renamed into place, then killed: no sidecar
    partial = folder / f".finetuned-20260101-000000-aaaaaaaaaaaa.json.{dead}.tmp"
    partial.write_text("{")
    registered = folder / "finetuned-20260101-000001-bbbbbbbbbbbb.pt"
    registered.write_bytes(b"\0")
    lib.add_model(
        name="ft",
        source="finetuned",
        origin="x",
        sha256="b" * 64,
        path=str(registered),
        preprocess="fixed",
        threshold=1.0,
        threshold_source="t",
    )
    theirs = folder / "finetuned-20260101-000002-cccccccccccc.pt"  # another library's
    theirs.write_bytes(b"\0")
    theirs.with_suffix(".json").write_text(
        json.dumps({"library": "/elsewhere.sqlite", "pid": int(dead)})
    )
    mine = folder / "finetuned-20260101-000003-dddddddddddd.pt"  # killed before registering
    mine.write_bytes(b"\0")
    mine.with_suffix(".json").write_text(
        json.dumps({"library": str(path.resolve()), "pid": int(dead)})
    )
    running = folder / f".finetuned-20260101-000004-eeeeeeeeeeee.pt.{os.getpid()}.tmp"
    running.write_bytes(b"\0")  # a save under way in a live process
    lib.close()
    open_library(None, path)  # the next start
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(
        [registered.name, theirs.name, theirs.with_suffix(".json").name, running.name]
    )
    assert clean_finetune_orphans(Library(path)) == []
    os.utime(running, (time.time() - 7200, time.time() - 7200))  # a save that never ended
    assert clean_finetune_orphans(Library(path)) == [running]
