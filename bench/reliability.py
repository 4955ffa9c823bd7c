"""The storage attack list: each attack run several times against the real CLI and engine.

Rows (attempts / passed / failed), each judged by what a user would see and keep:
- full disk during a scan (a real tmpfs that fills), and commands on a full disk;
- read-only data folder, library on a read-only disk;
- a lock held by another program; a foreign -wal file next to the library;
- the library deleted while a scan runs; an empty (0-byte) or foreign library file;
- one random page damaged (``faceapp check`` finds it, ``restore`` brings the labels
  back), the last page damaged (every command refuses, nothing is written);
- label commits reach the disk (fsync per edit, counted with strace);
- kills at SQLite statement boundaries and at random times during label operations
  (each operation lands whole or not at all);
- two processes creating one library and registering its base model at once;
- a second scan started while one runs (nothing analysed or stored twice);
- a fine-tune killed while saving its weights (leftovers gone on the next start);
- files vanishing during a scan (no stale error rows).

Scans use the real offline weights (MTCNN + FaceNet) on LFW photos. The tmpfs rows
need root (``mount``); they are reported as skipped otherwise.

    python bench/reliability.py [--attempts 3] [--seed 0]

Writes bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from damaged_library import labels_in  # noqa: E402
from kill_checks import identity_state  # noqa: E402
from kill_harness import child_env, choose_photos, place  # noqa: E402

RESULTS = REPO / "bench" / "results"


def start_scan(folder: Path, lib: Path, env: dict) -> subprocess.Popen:
    """``faceapp scan`` of ``folder`` into ``lib`` in a child process, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "faceapp", "scan", str(folder), "--library", str(lib)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def env_for(data_dir: Path) -> dict:
    """A child's environment: its own data folder, this checkout's faceapp and bench."""
    return child_env(data_dir) | {"PYTHONPATH": str(REPO)}


class Bench:
    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.rows: dict[str, dict] = {}
        self.n = 0

    def tmp(self, name: str) -> Path:
        self.n += 1
        path = self.root / f"{self.n:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def record(self, row: str, ok: bool, note: str = "") -> None:
        r = self.rows.setdefault(row, {"attempts": 0, "passed": 0, "failed": 0, "notes": []})
        r["attempts"] += 1
        r["passed" if ok else "failed"] += 1
        if not ok and note and len(r["notes"]) < 3:
            r["notes"].append(note[-300:])

    def skip(self, row: str, why: str) -> None:
        self.rows.setdefault(row, {"attempts": 0, "passed": 0, "failed": 0, "notes": [why]})


def cli(args: list, env: dict, timeout: float = 900) -> tuple[int, str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "faceapp", *map(str, args)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out.returncode, out.stdout, out.stderr


def one_clear_line(err: str, *words: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err and all(w in err for w in words)


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def name_some(path: Path, env: dict) -> dict:
    """Name the first cluster through the CLI (or, with no cluster, one face)."""
    assert cli(["cluster", "--library", path], env)[0] == 0
    _code, out, _err = cli(["people", "--library", path, "--json"], env)
    clusters = json.loads(out)["clusters"]
    if clusters:
        assert cli(["name", clusters[0]["ref"], "Anna", "--library", path], env)[0] == 0
    else:  # too few photos for a cluster: name one face through the engine
        from faceapp.engine import people
        from faceapp.engine.library import Library

        lib = Library(path, create=False)
        people.create_person(lib, "Anna", [lib.faces()[0].id])
        lib.close()
    return labels_in(path)


class Mount:
    """A small tmpfs (needs root)."""

    def __init__(self, where: Path, size: str) -> None:
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        self.ok = (
            os.geteuid() == 0
            and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
            ).returncode
            == 0
        )

    def fill(self, leave: int) -> Path:
        ballast = self.where / "ballast"
        st = os.statvfs(self.where)
        with open(ballast, "ab") as f:
            try:
                f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
                f.flush()
            except OSError:
                pass
        return ballast

    def close(self) -> None:
        if self.ok:
            subprocess.run(["umount", "-l", str(self.where)], check=False)


# --------------------------------------------------------------------------- attacks


def full_disk(b: Bench, photos: list[Path], attempts: int) -> None:
    for _i in range(attempts):
        work = b.tmp("full")
        disk = Mount(work / "disk", "16m")
        if not disk.ok:
            b.skip("full disk during a scan", "needs root for a tmpfs")
            return
        try:
            env = env_for(work / "data")
            folder, lib = work / "photos", disk.where / "lib.sqlite"
            place(photos[:6], folder)
            assert cli(["scan", folder, "--library", lib], env)[0] == 0
            before = name_some(lib, env)
            place(photos[6:40], folder)
            ballast = disk.fill(leave=b.rng.choice([20_000, 60_000, 150_000]))
            code, _, err = cli(["scan", folder, "--library", lib], env)
            ok = code == 1 and one_clear_line(err, "is full", "free some space")
            for command in (["people"], ["name", "Anna", "Anne"]):
                disk.fill(leave=0)
                c2, _, e2 = cli([*command, "--library", lib], env)
                ok_cmd = c2 == 0 or one_clear_line(e2, "is full")
                b.record("commands on a full disk name the cause", ok_cmd, e2)
            ballast.unlink()
            code2, _out2, err2 = cli(["scan", folder, "--library", lib], env)
            # the commands on the full disk may rename Anna: the labelled faces must stay
            ok = ok and code2 == 0 and integrity(lib) == "ok" and set(labels_in(lib)) == set(before)
            b.record("full disk during a scan: one line, nothing lost, rerun", ok, err + err2)
        finally:
            disk.close()


def read_only(b: Bench, photos: list[Path]) -> None:
    work = b.tmp("ro")
    data = Mount(work / "data", "4m")
    if not data.ok:
        b.skip("read-only data folder", "needs root for a tmpfs")
        return
    try:
        env = env_for(data.where)
        folder, lib = work / "photos", work / "lib.sqlite"
        place(photos[:3], folder)
        assert cli(["scan", folder, "--library", lib], env)[0] == 0
        subprocess.run(["mount", "-o", "remount,ro", str(data.where)], check=True)
        code, _out, err = cli(["people", "--library", lib], env)
        b.record("read-only data folder: commands work", code == 0 and err == "", err)
        view = work / "ro-view"
        view.mkdir()
        subprocess.run(["mount", "--bind", "-o", "ro", str(work), str(view)], check=True)
        code, _, err = cli(["name", "c1", "Anna", "--library", view / "lib.sqlite"], env)
        subprocess.run(["umount", str(view)], check=False)
        b.record("library on a read-only disk: says so", code == 1 and "read-only" in err, err)
    finally:
        data.close()


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(60)
    """
)


def locked_and_foreign_wal(b: Bench, photos: list[Path], env: dict, lib: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(lib)], stdout=subprocess.PIPE, text=True
    )
    try:
        holder.stdout.readline()
        t0 = time.perf_counter()
        code, _, err = cli(["people", "--library", lib], env)
        ok = code == 1 and one_clear_line(err, "locked by another program")
        b.record("lock held by another program: named", ok, err)
    finally:
        holder.kill()
        holder.wait()
    del t0
    work = b.tmp("wal")
    other = sqlite3.connect(work / "other.sqlite", isolation_level=None)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("PRAGMA wal_autocheckpoint = 0")
    other.execute("CREATE TABLE t(x)")
    for _ in range(50):
        other.execute("INSERT INTO t VALUES (?)", ("x" * 400,))
    mine = work / "lib.sqlite"
    shutil.copy(lib, mine)
    before = mine.read_bytes()
    shutil.copy(work / "other.sqlite-wal", work / "lib.sqlite-wal")
    code, _, err = cli(["people", "--library", mine], env)
    ok = code == 1 and one_clear_line(err, "may belong to another copy")
    ok = ok and mine.read_bytes() == before
    b.record("foreign -wal file: hint, library untouched", ok, err)
    other.close()


def deleted_during_scan(b: Bench, photos: list[Path], attempts: int) -> None:
    for _ in range(attempts):
        work = b.tmp("deleted")
        env = env_for(work / "data")
        folder, lib = work / "photos", work / "lib.sqlite"
        place(photos[:30], folder)
        after = b.rng.randint(3, 15)
        proc = start_scan(folder, lib, env)
        deleted = False
        while proc.poll() is None and not deleted:
            try:
                conn = sqlite3.connect(f"file:{lib}?mode=ro", uri=True, timeout=1)
                n = conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
                conn.close()
            except sqlite3.Error:
                n = 0
            if n >= after:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{lib}{suffix}").unlink(missing_ok=True)
                deleted = True
            time.sleep(0.05)
        out, err = proc.communicate(timeout=600)
        ok = not deleted or (
            proc.returncode == 1
            and one_clear_line(
                err.split("\r")[-1].lstrip("\n") if "\r" in err else err, "deleted or replaced"
            )
            and "photos scanned" not in out
        )
        b.record("library deleted during a scan: stops with an error", ok, err)


def empty_and_foreign(b: Bench, env: dict, lib: Path, folder: Path) -> None:
    work = b.tmp("empty")
    empty = work / "lib.sqlite"
    empty.touch()
    for command in (["people"], ["faces"], ["name", "c11", "X"], ["scan", folder]):
        code, _out, err = cli([*command, "--library", empty], env)
        ok = code == 1 and one_clear_line(err, "is empty (0 bytes)")
        b.record(
            "empty (0-byte) library: an error, never a new one",
            ok and empty.stat().st_size == 0,
            err,
        )
    foreign = work / "notes.sqlite"
    foreign.write_text("shopping list\n")
    code, _, err = cli(["people", "--library", foreign], env)
    ok = code == 1 and one_clear_line(err, "not a Face Album library")
    b.record(
        "foreign file: refused, left alone", ok and foreign.read_text() == "shopping list\n", err
    )
    code, _, err = cli(["people", "--library", work / "missing.sqlite"], env)
    b.record(
        "missing library: an error, not created",
        code == 1 and not (work / "missing.sqlite").exists(),
        err,
    )


def overwrite(path: Path, index: int, rng: random.Random) -> None:
    with open(path, "r+b") as f:
        f.seek((index - 1) * 4096)
        f.write(rng.randbytes(4096))


def damage(b: Bench, env: dict, lib: Path, attempts: int) -> None:
    pages = lib.stat().st_size // 4096
    for _ in range(attempts):
        work = b.tmp("damage")
        copy = work / "lib.sqlite"
        shutil.copy(lib, copy)
        data_env = env_for(work / "data")
        assert cli(["name", "Anna", "Anna B", "--library", copy], data_env)[0] == 0  # a backup
        before = labels_in(copy)
        page = b.rng.randint(2, pages - 1)
        overwrite(copy, page, b.rng)
        code, out, _ = cli(["check", "--library", copy], data_env)
        found = code == 1 and "damaged" in out
        b.record("random page damaged: `faceapp check` finds it", found, f"page {page}: {out}")
        if found:
            code, out, err = cli(["restore", "--library", copy], data_env)
            ok = code == 0 and integrity(copy) == "ok" and labels_in(copy) == before
            b.record("damage: `faceapp restore` brings every label back", ok, err)
        last = work / "last.sqlite"
        shutil.copy(lib, last)
        overwrite(last, last.stat().st_size // 4096, b.rng)
        raw = last.read_bytes()
        ok = True
        for command in (["people"], ["faces"], ["name", "Anna", "Bob"], ["undo"]):
            code, out, err = cli([*command, "--library", last], data_env)
            ok = ok and code == 1 and one_clear_line(err, "is damaged", "faceapp restore")
        b.record(
            "last page damaged: refused on open, nothing written",
            ok and last.read_bytes() == raw,
            err,
        )


SYNCS = textwrap.dedent(
    """
    import os, sys
    from faceapp.engine import people
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    faces = [f.id for f in lib.faces() if f.person_id is None]
    for i in range(5):
        os.getpid()
        people.create_person(lib, f"Synced {i}", faces[i : i + 1])
    os.getpid()
    """
)


def durable(b: Bench, lib: Path) -> None:
    if shutil.which("strace") is None:
        b.skip("label commits reach the disk (fsync per edit)", "needs strace")
        return
    work = b.tmp("sync")
    copy = work / "lib.sqlite"
    shutil.copy(lib, copy)
    trace = work / "trace"
    subprocess.run(
        [
            "strace",
            "-f",
            "-o",
            str(trace),
            "-e",
            "trace=getpid,fsync,fdatasync",
            sys.executable,
            "-c",
            SYNCS,
            str(copy),
        ],
        check=True,
        env=env_for(work / "data"),
        capture_output=True,
    )
    calls = [
        "sync" if "sync(" in x else "mark"
        for x in trace.read_text().splitlines()
        if "getpid()" in x or "sync(" in x
    ]
    marks = [i for i, c in enumerate(calls) if c == "mark"][-6:]
    for a, c in itertools.pairwise(marks):
        b.record("label commits reach the disk (fsync per edit)", calls[a:c].count("sync") >= 1)


OPS = textwrap.dedent(
    """
    import hashlib, os, sys
    from faceapp.engine import album, naming, oplog, people
    from faceapp.engine.library import Library
    path, kill_at = sys.argv[1], int(sys.argv[2])
    lib = Library(path)
    count = [0]
    def trace(statement):
        count[0] += 1
        if count[0] == kill_at:
            os._exit(9)
    lib.conn.set_trace_callback(trace)  # counts statements; ends the process at kill_at
    def done():
        if not kill_at:  # the reference run: the state after each whole operation
            lib.conn.set_trace_callback(None)  # its own reads are not counted
            print(hashlib.sha1(repr(identity_state(lib.conn)).encode()).hexdigest())
            lib.conn.set_trace_callback(trace)
    done()
    groups = [g for g in album.groups(lib) if g.kind == "cluster"]
    faces = [f.id for f in lib.faces() if f.person_id is None]
    anna = people.create_person(lib, "Dana", faces[-1:]).person_id; done()
    bob = naming.name_cluster(lib, groups[-1].id, "Bob").person_id if groups else anna; done()
    people.rename_person(lib, anna, "Dana K"); done()
    people.move_faces(lib, faces[:1], anna); done()
    people.reject_faces(lib, faces[:1], anna); done()
    if bob != anna:
        people.merge(lib, ("person", bob), ("person", anna)); done()
    oplog.undo(lib); done()
    oplog.redo(lib); done()
    people.create_person(lib, "Carl", faces[1:2]); done()
    print(count[0])
    """
)


def state_hash(path: Path) -> tuple[str, bool]:
    import hashlib

    conn = sqlite3.connect(path)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return hashlib.sha1(repr(identity_state(conn)).encode()).hexdigest(), ok
    finally:
        conn.close()


def kills(b: Bench, env: dict, lib: Path, attempts: int) -> None:
    """Kill a sequence of label operations at SQLite statement boundaries (the trace
    callback ends the process as a statement starts) and at random times: the library
    must be sound and in a state that some number of whole operations produced."""
    work = b.tmp("kills")
    ref = work / "ref.sqlite"
    shutil.copy(lib, ref)
    run = subprocess.run(
        [sys.executable, "-c", OPS, str(ref), "0"], env=env, capture_output=True, text=True
    )
    if run.returncode:
        raise RuntimeError(run.stderr[-500:])
    out = run.stdout.split()
    whole, total = set(out[:-1]), int(out[-1])
    for k in sorted(b.rng.sample(range(1, total + 1), min(attempts, total))):
        copy = work / f"k{k}.sqlite"
        shutil.copy(lib, copy)
        subprocess.run([sys.executable, "-c", OPS, str(copy), str(k)], env=env, capture_output=True)
        state, ok = state_hash(copy)
        b.record(
            "kill at a statement boundary: sound, each edit whole or absent",
            ok and state in whole,
            f"statement {k}",
        )
    for _ in range(attempts):
        copy = work / "random.sqlite"
        shutil.copy(lib, copy)
        proc = subprocess.Popen(
            [sys.executable, "-c", OPS, str(copy), "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(b.rng.uniform(0.5, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state, ok = state_hash(copy)
        b.record("SIGKILL at a random time during edits: sound, whole edits", ok and state in whole)


CREATOR = textwrap.dedent(
    """
    import sys, time
    from faceapp.engine.library import Library
    from faceapp.engine import model_versions, weights
    path, start = sys.argv[1], float(sys.argv[2])
    loaded = weights.LoadedWeights(state_dict={}, source="casia-webface", origin="x",
        sha256="f" * 64, preprocess="fixed", threshold=1.0, threshold_source="t", file=None)
    while time.time() < start:
        pass
    lib = Library(path)
    print(model_versions.register_base(lib, loaded).id)
    """
)


def concurrent_create(b: Bench, attempts: int) -> None:
    work = b.tmp("create")
    env = env_for(work / "data")
    for i in range(attempts):
        path = work / f"lib{i}.sqlite"
        start = time.time() + 4.0
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CREATOR, str(path), str(start)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        ok = all(p.returncode == 0 for p in procs)
        b.record("two processes create one library at once", ok, outs[0][1] + outs[1][1])
        if ok:
            conn = sqlite3.connect(path)
            n = conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]
            conn.close()
            same = len({o.strip() for o, _ in outs}) == 1
            b.record("two processes register the base model at once: one row", n == 1 and same)


def concurrent_scan(b: Bench, photos: list[Path]) -> None:
    work = b.tmp("twoscans")
    env = env_for(work / "data")
    folder, lib = work / "photos", work / "lib.sqlite"
    place(photos[:4], folder)
    assert cli(["scan", folder, "--library", lib], env)[0] == 0
    place(photos[4:40], folder)
    first = subprocess.Popen(
        [sys.executable, "-m", "faceapp", "scan", str(folder), "--library", str(lib), "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while True:
        conn = sqlite3.connect(f"file:{lib}?mode=ro", uri=True, timeout=5)
        n = conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        conn.close()
        if n >= 14 or first.poll() is not None:
            break
        time.sleep(0.1)
    code, out, err = cli(["scan", folder, "--library", lib, "--json"], env)
    _out1, _ = first.communicate(timeout=900)
    second = json.loads(out) if code == 0 else {}
    conn = sqlite3.connect(lib)
    faces = conn.execute("SELECT COUNT(*), MAX(id) FROM faces").fetchone()
    conn.close()
    ok = code == 0 and faces[0] == faces[1] and second.get("skipped_unchanged", 0) >= 14
    b.record("second scan at once: skips what the first stored", ok, f"{faces} {second} {err}")


SAVER = textwrap.dedent(
    """
    import sys, torch
    from faceapp.engine import finetune
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    state = {f"w{i}": torch.randn(1024, 1024) for i in range(24)}  # ~100 MB, as real weights
    path, sha = finetune.save_weights(state, {"library": str(lib.path.resolve())})
    lib.add_model(name="ft", source="finetuned", origin="x", sha256=sha, path=str(path),
                  preprocess="fixed", threshold=1.0, threshold_source="t")
    print("saved", flush=True)
    """
)


def finetune_orphans(b: Bench, lib: Path, attempts: int) -> None:
    work = b.tmp("ftkill")
    env = env_for(work / "data")
    copy = work / "lib.sqlite"
    shutil.copy(lib, copy)
    models = work / "data" / "models"
    for _ in range(attempts):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(copy)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if models.is_dir() and any(models.iterdir()):
                time.sleep(b.rng.uniform(0.0, 0.6))  # somewhere in the save
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left_before = sorted(p.name for p in models.iterdir()) if models.is_dir() else []
        cli(["people", "--library", copy], env)  # the next start
        conn = sqlite3.connect(copy)
        registered = {
            Path(p).name for (p,) in conn.execute("SELECT path FROM models WHERE path IS NOT NULL")
        }
        conn.close()
        left = [p.name for p in models.iterdir()] if models.is_dir() else []
        stray = [
            n for n in left if n.endswith(".tmp") or (n.endswith(".pt") and n not in registered)
        ]
        b.record(
            "fine-tune killed while saving: leftovers gone on next start",
            not stray,
            f"before {left_before}, after {left}",
        )


def vanishing_files(b: Bench, photos: list[Path], env_dir: Path) -> None:
    work = b.tmp("vanish")
    env = env_for(work / "data")
    folder, lib = work / "photos", work / "lib.sqlite"
    place(photos[:24], folder)
    files = sorted(folder.rglob("*.jpg"))
    proc = start_scan(folder, lib, env)
    while not lib.exists() and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(1.0)
    for f in files[-12:]:
        f.unlink()
    proc.communicate(timeout=900)
    code, out, _err = cli(["scan", folder, "--library", lib, "--json"], env)
    report = json.loads(out) if code == 0 else {"errors": ["failed"]}
    conn = sqlite3.connect(lib)
    rows = conn.execute("SELECT COUNT(*) FROM photos WHERE status = 'error'").fetchone()[0]
    conn.close()
    b.record(
        "files vanishing mid-scan: no stale error rows",
        rows == 0 and not report["errors"],
        f"{rows} error rows; {report['errors']}",
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    photos = choose_photos(60, args.seed)
    with tempfile.TemporaryDirectory(prefix="faceapp-reliability-") as tmp:
        b = Bench(Path(tmp), args.seed)
        # one scanned, clustered, labelled library that several rows copy
        base = b.tmp("base")
        env = env_for(base / "data")
        folder, lib = base / "photos", base / "lib.sqlite"
        place(photos[:40], folder)
        assert cli(["scan", folder, "--library", lib], env)[0] == 0
        name_some(lib, env)
        gc.collect()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("empty/foreign", lambda: empty_and_foreign(b, env, lib, folder)),
            ("lock/wal", lambda: locked_and_foreign_wal(b, photos, env, lib)),
            ("damage", lambda: damage(b, env, lib, args.attempts)),
            ("durable", lambda: durable(b, lib)),
            ("kills", lambda: kills(b, env, lib, 10 * args.attempts)),
            ("create", lambda: concurrent_create(b, 3 * args.attempts)),
            ("orphans", lambda: finetune_orphans(b, lib, args.attempts)),
            ("read-only", lambda: read_only(b, photos)),
            ("full disk", lambda: full_disk(b, photos, max(1, args.attempts - 1))),
            ("deleted", lambda: deleted_during_scan(b, photos, args.attempts)),
            ("two scans", lambda: concurrent_scan(b, photos)),
            ("vanishing", lambda: vanishing_files(b, photos, base)),
        ]
        for name, step in steps:
            t = time.perf_counter()
            try:
                step()
            except Exception as exc:  # a broken attack is a failed row, not a crashed bench
                b.record(f"{name}: bench step ran", False, repr(exc))
            print(f"  {name}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        rows = b.rows
    print(f"{'attack':<62} {'attempts':>8} {'passed':>7} {'failed':>7}")
    for row, r in rows.items():
        print(f"{row:<62} {r['attempts']:>8} {r['passed']:>7} {r['failed']:>7}")
        for note in r["notes"] if r["failed"] or not r["attempts"] else []:
            print(f"    {note.strip()[:200]}")
    total_failed = sum(r["failed"] for r in rows.values())
    print(
        f"{sum(r['attempts'] for r in rows.values())} attempts, {total_failed} failed,"
        f" {time.perf_counter() - t0:.0f} s"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.json").write_text(json.dumps(rows, indent=1))
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
