"""How long each ``faceapp`` command that needs no network takes, start to exit.

Each command runs as a fresh ``python -m faceapp`` process on a small library
(synthetic embeddings: 12 people x 8 faces, clustered, one person named), five
times; the table shows the median wall time, the median CPU time of the process
(user + system: what the command costs, whatever else the machine is doing) and
whether torch was imported (an ``-X importtime`` run of the same command). Goal:
under 0.5 s and no torch.

    python bench/cli_startup.py [--runs 5] [--commands people faces ...]

Figures are noisy on a shared machine: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO / "tests"))
from small_library import small_library  # noqa: E402

GOAL_S = 0.5
COMMANDS = (
    "people",
    "faces",
    "photos",
    "name",
    "merge",
    "move",
    "reject",
    "undo",
    "redo",
    "suggestions",
    "models",
)


def build_library(path: Path, people: int = 12, per_person: int = 8, seed: int = 0) -> dict:
    """A real library file with tight synthetic identities, clustered, one person named.

    Returns another cluster's reference and faces that are not Anna's, for the commands.
    """
    from faceapp.engine import album
    from faceapp.engine.cluster import recluster
    from faceapp.engine.naming import name_cluster

    rng = np.random.default_rng(seed)
    centres = np.repeat(rng.normal(size=(people, 512)), per_person, axis=0)
    vectors = centres + 0.15 * rng.normal(size=centres.shape)
    names = [f"p{p:02d}_{k}.jpg" for p in range(people) for k in range(per_person)]
    lib = small_library(path, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), names)
    recluster(lib)
    clusters = [g for g in album.groups(lib) if g.kind == "cluster"]
    anna = name_cluster(lib, clusters[0].id, "Anna").person_id
    others = [f.id for f in lib.faces() if f.person_id != anna]
    lib.close()
    return {"cluster": f"c{clusters[1].id}", "faces": others}


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, FACEAPP_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    env.pop("FACEAPP_RANDOM_WEIGHTS", None)
    return env


def _run(args: list[str], env: dict[str, str], *flags: str) -> tuple[float, float, int, str]:
    """(wall s, CPU s of the child, exit code, stderr) of one ``python -m faceapp`` run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *flags, "-m", "faceapp", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), err


def _imported(importtime_log: str) -> set[str]:
    """Top-level package names in a ``python -X importtime`` log."""
    return {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in importtime_log.splitlines()
        if line.startswith("import time:")
    }


def command_args(command: str, lib: Path, run: int, refs: dict) -> list[list[str]]:
    """The command line(s) of one timed run; state-changing ones undo themselves after."""
    common = ["--library", str(lib)]
    face = str(refs["faces"][run])  # not Anna's: moved to her, then rejected again
    return {
        "people": [["people", *common]],
        "faces": [["faces", *common]],
        "photos": [["photos", *common]],
        "name": [
            ["name", "Anna", f"Anna {run}", *common],
            ["name", f"Anna {run}", "Anna", *common],
        ],
        "merge": [["merge", refs["cluster"], "Anna", *common], ["undo", *common]],
        "move": [["move", face, "--to", "Anna", *common], ["undo", *common]],
        "reject": [
            ["move", face, "--to", "Anna", *common],
            ["reject", face, "--from", "Anna", *common],
        ],
        "undo": [["name", "Anna", "Anne", *common], ["undo", *common]],
        "redo": [
            ["name", "Anna", "Anne", *common],
            ["undo", *common],
            ["redo", *common],
            ["undo", *common],
        ],
        "suggestions": [["suggestions", *common]],
        "models": [["models", *common]],
    }[command]


def _timed_index(command: str) -> int:
    """Which of a run's command lines is the one being measured."""
    return {"reject": 1, "undo": 1, "redo": 2}.get(command, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--commands", nargs="+", default=list(COMMANDS))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lib = tmp / "album.sqlite"
        refs = build_library(lib)
        env = _env(tmp / "data")
        for command in args.commands:
            times, cpu, error = [], [], None
            for run in range(args.runs):
                for i, line in enumerate(command_args(command, lib, run, refs)):
                    seconds, cpu_s, code, err = _run(line, env)
                    if code != 0 and error is None:
                        error = (err.strip().splitlines() or ["?"])[-1]
                    if i == _timed_index(command):
                        times.append(seconds)
                        cpu.append(cpu_s)
            # one more run under -X importtime (not timed): was torch imported?
            for i, line in enumerate(command_args(command, lib, args.runs, refs)):
                err = _run(line, env, "-X", "importtime")[3]
                if i == _timed_index(command):
                    torch_imported = "torch" in _imported(err)
            row = {
                "command": command,
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "median_cpu_s": round(statistics.median(cpu), 3),
                "torch_imported": torch_imported if error is None else None,
                "error": error,
            }
            row["ok"] = error is None and row["median_s"] < GOAL_S and not row["torch_imported"]
            rows.append(row)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    print(f"{'command':<12} {'median s':>9} {'min':>7} {'max':>7} {'CPU s':>7}  torch  ok")
    for r in rows:
        torch_col = "-" if r["torch_imported"] is None else ("yes" if r["torch_imported"] else "no")
        print(
            f"{r['command']:<12} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {r['max_s']:>7.3f}"
            f" {r['median_cpu_s']:>7.3f}  {torch_col:<5}  {'yes' if r['ok'] else 'NO'}"
            + (f"  ({r['error']})" if r["error"] else "")
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "cli_startup.json"
    out.write_text(json.dumps({"runs": args.runs, "goal_s": GOAL_S, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
