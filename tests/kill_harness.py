"""SIGKILLs at random moments of real ``faceapp`` commands, and the checks after each kill.

:func:`run` kills scans (some while photos are moved and renamed between runs),
re-clustering, identity operations and fine-tuning, and after each kill checks the
library: integrity, every face of a clean reference scan stored once, no label lost,
operations atomic. tests/cli/test_kills.py runs a handful of kills; bench/kill_test.py
runs 20+ and prints the table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kill_checks import (
    Check,
    Labels,
    check_library,
    connect,
    faces_by_content,
    identity_state,
    stored_faces,
)

REPO = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("FACEAPP_LFW", REPO.parent / "shared" / "data" / "lfw"))

# Runs faceapp's CLI; registers the people and fine-tune commands itself when the
# installed CLI does not (yet) list them, so the same engine entry points are killed.
DRIVER = """
import argparse, sys
import faceapp.cli as cli
from faceapp.cli import scan
mods = [scan]
for name in ("people", "finetune"):
    try:
        mods.append(__import__(f"faceapp.cli.{name}", fromlist=[name]))
    except ImportError:
        pass
known = set(cli.build_parser()._subparsers._group_actions[0].choices)
if sys.argv[1] not in known:
    def build_parser():
        p = argparse.ArgumentParser(prog="faceapp")
        sub = p.add_subparsers(dest="command", required=True)
        for m in mods:
            m.register(sub)
        return p
    cli.build_parser = build_parser
sys.exit(cli.main(sys.argv[1:]))
"""


# --------------------------------------------------------------------------- running


def child_env(data_dir: Path) -> dict:
    env = dict(os.environ)
    env["FACEAPP_DATA_DIR"] = str(data_dir)
    env.setdefault("FACEAPP_WEIGHTS_CACHE", str(REPO / ".venv" / "faceapp-test-data"))
    return env


def faceapp(args: list[str], env: dict, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run a command to completion (for reference runs and resumes)."""
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"faceapp {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


def _wal_state(library: Path) -> tuple[int, int]:
    try:
        st = os.stat(f"{library}-wal")
        return st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        return (0, 0)


def _db_state(library: Path, query: str) -> object:
    try:
        conn = sqlite3.connect(f"file:{library}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(query).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None


@dataclass
class Kill:
    phase: str
    delay: float  # seconds after start when SIGKILL was sent
    finished_first: bool  # the command ended before the kill landed
    trigger: str
    returncode: int | None = None  # when it had finished
    stderr: str = ""


def _start(args: list[str], env: dict, err: BinaryIO) -> subprocess.Popen:
    """Start a ``faceapp`` command through the driver, its stderr into ``err``."""
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )


def run_and_kill(
    args: list[str],
    env: dict,
    library: Path,
    rng: random.Random,
    *,
    phase: str,
    max_delay: float,
    after_write: bool = False,
    wait_query: str | None = None,
) -> Kill:
    """Start a command and SIGKILL it at a random moment.

    ``after_write``: the random delay starts once the library's WAL file first changes
    (the command is writing), so kills land inside the interesting part instead of
    during the seconds of Python and torch imports. ``wait_query``: start the delay once
    this SQL query (read-only) returns a row.
    """
    with tempfile.TemporaryFile() as err:
        proc = _start(args, env, err)
        t0 = time.perf_counter()
        trigger = "start"
        if after_write or wait_query:
            wal = _wal_state(library)
            while proc.poll() is None and time.perf_counter() - t0 < 600:
                if wait_query and _db_state(library, wait_query):
                    trigger = "query"
                    break
                if after_write and not wait_query and _wal_state(library) != wal:
                    trigger = "first write"
                    break
                time.sleep(0.02)
        deadline = time.perf_counter() + rng.uniform(0, max_delay)
        while proc.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.01)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        err.seek(0)
        tail = err.read().decode(errors="replace")[-300:] if finished else ""
        code = proc.returncode if finished else None
    return Kill(phase, round(time.perf_counter() - t0, 2), finished, trigger, code, tail)


def timed_run(args: list[str], env: dict, library: Path, query: str) -> tuple[float, float]:
    """Run to completion: total seconds, and seconds from when ``query`` first returns a row."""
    with tempfile.TemporaryFile() as err:
        proc = _start(args, env, err)
        t0 = time.perf_counter()
        seen = None
        while proc.poll() is None:
            if seen is None and _db_state(library, query):
                seen = time.perf_counter()
            time.sleep(0.05)
        end = time.perf_counter()
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-500:]
            raise RuntimeError(f"faceapp {' '.join(args)} failed: {tail}")
    return end - t0, end - (seen or end)


# --------------------------------------------------------------------------- the photos


def choose_photos(count: int, seed: int) -> list[Path]:
    """LFW photos of people with several photos (so clusters and names make sense)."""
    root = LFW / "lfw-deepfunneled"
    if not root.is_dir():
        raise SystemExit(f"LFW not found under {LFW} (set FACEAPP_LFW)")
    rng = random.Random(seed)
    people = sorted(p for p in root.iterdir() if p.is_dir())
    rng.shuffle(people)
    chosen: list[Path] = []
    for person in people:
        files = sorted(person.glob("*.jpg"))
        if len(files) >= 4:
            chosen += files[:8]
        if len(chosen) >= count:
            break
    return chosen[:count]


def place(photos: list[Path], folder: Path) -> None:
    for src in photos:
        dest = folder / src.parent.name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


def shuffle_names(folder: Path, rng: random.Random, n: int) -> list[str]:
    """Move, rename and swap a few photos between runs (labels must follow content)."""
    files = sorted(p for p in folder.rglob("*.jpg"))
    done = []
    for _ in range(n):
        a, b = rng.sample(files, 2)
        kind = rng.choice(["rename", "move", "swap"])
        if kind == "swap":
            tmp = a.with_name(a.name + ".swap")
            a.rename(tmp)
            b.rename(a)
            tmp.rename(b)
        else:
            dest = (folder / "moved" / a.name) if kind == "move" else a.with_name("r-" + a.name)
            dest.parent.mkdir(exist_ok=True)
            if dest.exists():
                continue
            a.rename(dest)
            files[files.index(a)] = dest
        done.append(kind)
    return done


def add_labels(library: Path, rng: random.Random) -> None:
    """Cluster, name some clusters, confirm and reject a few faces (the engine API)."""
    from faceapp.engine import album, naming, people
    from faceapp.engine.cluster import recluster
    from faceapp.engine.library import Library

    lib = Library(library)
    recluster(lib)
    groups = [g for g in album.groups(lib) if g.kind == "cluster"]
    for i, g in enumerate(groups[: max(3, len(groups) * 2 // 3)]):
        naming.name_cluster(lib, g.id, f"Person {i:02d}")
    named = [g for g in album.groups(lib) if g.kind == "person"]
    unknown = album.group_faces(lib, "unknown")
    if unknown and named:
        people.create_person(lib, "Someone Else", unknown[:1])
    if len(named) >= 2:
        victim = album.group_faces(lib, "person", named[0].id)[-1]
        people.reject_faces(lib, [victim], named[0].id)
    lib.close()


def identity_ops(library: Path, rng: random.Random) -> list[list[str]]:
    """A few CLI identity commands that apply to the library as it is now."""
    conn = connect(library)
    try:
        clusters = [
            r[0]
            for r in conn.execute(
                "SELECT cluster_id, COUNT(*) n FROM faces WHERE person_id IS NULL AND"
                " cluster_id IS NOT NULL GROUP BY cluster_id ORDER BY n DESC"
            )
        ]
        persons = [r[0] for r in conn.execute("SELECT id FROM people ORDER BY id")]
        faces = [r[0] for r in conn.execute("SELECT id FROM faces WHERE person_id IS NULL")]
    finally:
        conn.close()
    ops: list[list[str]] = []
    if clusters:
        ops.append(["name", f"c{clusters[0]}", f"Named {rng.randrange(10**6)}"])
    if len(persons) >= 2:
        a, b = rng.sample(persons, 2)
        ops.append(["merge", f"p{a}", f"p{b}"])
        ops.append(["reject", str(rng.choice(faces)), "--from", f"p{b}"] if faces else ["undo"])
    if persons and faces:
        ops.append(["move", str(rng.choice(faces)), "--to", f"p{rng.choice(persons)}"])
    ops.append(["undo"])
    return ops


# --------------------------------------------------------------------------- main


@dataclass
class Tally:
    kills: int = 0
    survived: int = 0
    integrity_failures: int = 0
    duplicates: int = 0
    lost_faces: int = 0
    wrong_faces: int = 0
    labels_lost: int = 0
    unembedded: int = 0
    finished_before_kill: int = 0
    not_atomic: int = 0

    def add(self, kill: Kill, check: Check, atomic: bool = True) -> None:
        self.kills += 1
        self.finished_before_kill += kill.finished_first
        self.integrity_failures += not check.integrity_ok
        self.duplicates += check.duplicates
        self.lost_faces += check.lost_faces
        self.wrong_faces += check.wrong_faces
        self.labels_lost += check.labels_lost
        self.unembedded += check.unembedded
        self.not_atomic += not atomic
        self.survived += check.ok and atomic


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill-test-"))
    env = child_env(work / "data")
    folder = work / "photos"
    library = work / "library.sqlite"
    log: list[dict] = []
    tallies: dict[str, Tally] = {}
    t_start = time.perf_counter()

    def record(kill: Kill, check: Check, atomic: bool = True, extra: dict | None = None) -> None:
        tallies.setdefault(kill.phase, Tally()).add(kill, check, atomic)
        entry = {**kill.__dict__, "ok": check.ok and atomic, "details": check.details[:5]}
        if kill.finished_first and kill.returncode:
            print(f"      (it had ended with {kill.returncode}: {kill.stderr.strip()[-200:]})")
        log.append(entry | (extra or {}))
        mark = "ok " if check.ok and atomic else "BAD"
        print(
            f"  {mark} {kill.phase:<9} kill at {kill.delay:6.2f} s ({kill.trigger})"
            f"{'  [had finished]' if kill.finished_first else ''}"
            f"{'  ' + '; '.join(check.details[:2]) if check.details else ''}",
            flush=True,
        )

    try:
        photos = choose_photos(args.photos, args.seed)
        part_a, part_b = photos[: len(photos) // 3], photos[len(photos) // 3 :]
        # the reference: one clean scan of everything
        place(photos, work / "reference")
        t0 = time.perf_counter()
        faceapp(["scan", str(work / "reference"), "--library", str(work / "ref.sqlite")], env)
        ref_seconds = time.perf_counter() - t0
        conn = connect(work / "ref.sqlite")
        reference = {h: boxes[0] for h, boxes in faces_by_content(conn).items()}
        copies = Counter(
            h
            for (h,) in conn.execute(
                "SELECT content_hash FROM photos WHERE status = 'ok' AND content_hash IS NOT NULL"
            )
        )
        conn.close()
        print(
            f"reference: {len(photos)} photos, {sum(map(len, reference.values()))} faces"
            f" in {ref_seconds:.0f} s",
            flush=True,
        )

        # labels on the first third
        place(part_a, folder)
        faceapp(["scan", str(folder), "--library", str(library)], env)
        add_labels(library, rng)

        def snapshot() -> tuple[dict, Labels]:
            conn = connect(library)
            try:
                return stored_faces(conn), Labels.read(conn)
            finally:
                conn.close()

        def check() -> Check:
            return check_library(library, reference, copies, *snapshot_before)

        # -- scan kills, with moves and swaps between runs
        place(part_b, folder)
        print(f"scan kills ({args.scan_kills}):", flush=True)
        moves: Counter[str] = Counter()
        for i in range(args.scan_kills):
            if i % 3 == 2:
                moves.update(shuffle_names(folder, rng, 2))
            snapshot_before = snapshot()
            kill = run_and_kill(
                ["scan", str(folder), "--library", str(library)],
                env,
                library,
                rng,
                phase="scan",
                max_delay=args.scan_max_delay if i % 2 else 3.0,
                after_write=bool(i % 2 == 0),
            )
            record(kill, check())
        # the resume: must finish with the reference's faces and every label
        snapshot_before = snapshot()
        faceapp(["scan", str(folder), "--library", str(library)], env)
        final = check()
        conn = connect(library)
        stored = faces_by_content(conn)
        conn.close()
        missing_photos = [h for h in reference if h not in stored]
        resume = {
            "finished": True,
            "photos_missing_after_resume": len(missing_photos),
            "check_ok": final.ok,
            "details": final.details[:10],
            "moves_between_kills": dict(moves),
        }
        print(f"resume: {len(stored)} of {len(reference)} photos, check ok: {final.ok}")

        # -- cluster kills
        print(f"cluster kills ({args.cluster_kills}):", flush=True)
        t0 = time.perf_counter()
        shutil.copy(library, work / "timing.sqlite")
        faceapp(["cluster", "--library", str(work / "timing.sqlite")], env)
        cluster_seconds = time.perf_counter() - t0
        for _ in range(args.cluster_kills):
            snapshot_before = snapshot()
            kill = run_and_kill(
                ["cluster", "--library", str(library)],
                env,
                library,
                rng,
                phase="cluster",
                max_delay=cluster_seconds * 1.1,
            )
            record(kill, check())
        faceapp(["cluster", "--library", str(library)], env)

        # -- identity operations: each lands whole or not at all
        print(f"identity operation kills ({args.op_kills}):", flush=True)
        for i in range(args.op_kills):
            ops = identity_ops(library, rng)
            op = ops[i % len(ops)]
            shutil.copy(library, work / "op.sqlite")
            t0 = time.perf_counter()
            try:
                faceapp([*op, "--library", str(work / "op.sqlite")], env)
            except RuntimeError:
                continue  # not applicable now (e.g. nothing to undo)
            op_seconds = time.perf_counter() - t0
            conn = connect(work / "op.sqlite")
            after_state = identity_state(conn)
            conn.close()
            conn = connect(library)
            before_state = identity_state(conn)
            conn.close()
            snapshot_before = snapshot()
            kill = run_and_kill(
                [*op, "--library", str(library)],
                env,
                library,
                rng,
                phase="identity",
                max_delay=op_seconds * 1.1,
            )
            conn = connect(library)
            state = identity_state(conn)
            conn.close()
            landed = state == after_state
            atomic = landed or state == before_state
            c = check()
            if landed:  # the operation itself may move labels: compare with its clean result
                conn = connect(work / "op.sqlite")
                snapshot_before = (snapshot_before[0], Labels.read(conn))
                conn.close()
                c = check()
            record(kill, c, atomic, {"op": op[0], "landed": landed})

        # -- fine-tuning: training, saving the new version, re-embedding
        if args.finetune_kills:
            print(f"fine-tune kills ({args.finetune_kills}):", flush=True)
            ft_args = ["finetune", "--epochs", "1", "--force", "--device", "cpu", "--library"]
            shutil.copy(library, work / "ft.sqlite")
            building = "SELECT id FROM models WHERE status = 'building' AND id > {}"
            try:
                ft_seconds, accept_seconds = timed_run(
                    [*ft_args, str(work / "ft.sqlite")],
                    env,
                    work / "ft.sqlite",
                    building.format(_max_model(work / "ft.sqlite")),
                )
                print(
                    f"  a clean run: {ft_seconds:.0f} s, saving + re-embedding"
                    f" {accept_seconds:.0f} s",
                    flush=True,
                )
            except RuntimeError as exc:
                ft_seconds = None
                print(f"  fine-tuning not available here: {exc}")
            if ft_seconds is not None:
                for i in range(args.finetune_kills):
                    snapshot_before = snapshot()
                    kill = run_and_kill(  # odd runs: killed while saving / re-embedding
                        [*ft_args, str(library)],
                        env,
                        library,
                        rng,
                        phase="finetune",
                        max_delay=0.9 * (accept_seconds if i % 2 else ft_seconds),
                        wait_query=building.format(_max_model(library)) if i % 2 else None,
                    )
                    record(kill, check())
                # afterwards the library still scans (with whichever version is active)
                from faceapp.engine.scan_decode import file_hash

                shutil.copy(photos[0], folder / "after-finetune.jpg")
                copies[file_hash(photos[0])] += 1
                snapshot_before = snapshot()
                faceapp(["scan", str(folder), "--library", str(library)], env)
                resume["scan_after_finetune_kills_ok"] = check().ok
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = Tally()
    for t in tallies.values():
        for k, v in t.__dict__.items():
            setattr(total, k, getattr(total, k) + v)
    return {
        "phases": {k: v.__dict__ for k, v in tallies.items()},
        "total": total.__dict__,
        "resume": resume,
        "photos": len(photos),
        "reference_faces": sum(map(len, reference.values())),
        "seconds": round(time.perf_counter() - t_start, 1),
        "seed": args.seed,
        "kills": log,
    }


def _max_model(library: Path) -> int:
    row = _db_state(library, "SELECT MAX(id) FROM models")
    return int(row[0] or 0) if row else 0
