"""What it costs to make every label edit durable (synchronous=FULL), per operation.

A library of --faces synthetic faces (one per photo) on the disk under --dir; each
label operation runs --repeat times in one long-lived process (as the GUI does), with
the app's durable commits (FULL: the journal is fsynced before the call returns) and,
side by side, with NORMAL (the previous setting: no fsync until a checkpoint). The
merge moves --merge faces from one person to another (the goal: under 200 ms).
Numbers are noisy on a shared machine; compare the two columns of one run.

    python bench/durable_commit.py [--faces 20000] [--merge 1000] [--repeat 20] [--dir /tmp]

Writes bench/results/durable_commit.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from faceapp.engine import oplog, people  # noqa: E402
from faceapp.engine.library import Library  # noqa: E402
from faceapp.engine.library_photos import NewFace  # noqa: E402

RESULTS = REPO / "bench" / "results"


def build(path: Path, faces: int) -> Library:
    lib = Library(path, root=path.parent)
    lib.set_active_model(
        lib.add_model(
            name="bench",
            source="random-dev",
            origin="bench",
            sha256="0" * 64,
            preprocess="fixed",
            threshold=1.0,
            threshold_source="bench",
        )
    )
    rng = np.random.default_rng(0)
    crop = rng.bytes(2048)
    model = lib.active_model().id
    with lib.transaction(durable=False):
        for i in range(faces):
            v = rng.standard_normal(512).astype(np.float32)
            lib.store_photo(
                f"p{i:06d}.jpg",
                size=1,
                mtime_ns=i,
                width=100,
                height=100,
                content_hash=f"h{i}",
                faces=[NewFace((1, 1, 50, 50), [[1, 1]] * 5, 0.9, crop, v / np.linalg.norm(v))],
                model_id=model,
            )
    return lib


@contextmanager
def commits(lib: Library, durable: bool):
    """Run the block with every transaction durable (the app) or not (the old setting)."""
    original = Library.transaction

    def transaction(self, *, durable_arg: bool = durable, **_kw):
        return original(self, durable=durable_arg)

    Library.transaction = transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        Library.transaction = original  # type: ignore[method-assign]


def timed(fn: Callable[[int], object], repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def run(lib: Library, merge_n: int, repeat: int, tag: str) -> dict[str, list[float]]:
    ids = [f.id for f in lib.faces()]
    base = {"a": len(ids) // 2}
    anna = people.create_person(lib, f"Anna {tag}", ids[: merge_n // 2]).person_id
    spare = iter(ids[merge_n:])

    def merge_round(i: int) -> None:
        # two people of merge_n faces in total, merged; the next round builds new ones
        start = base["a"] + i * merge_n
        a = people.create_person(lib, f"A{tag}{i}", ids[start : start + merge_n // 2]).person_id
        b = people.create_person(
            lib, f"B{tag}{i}", ids[start + merge_n // 2 : start + merge_n]
        ).person_id
        t0 = time.perf_counter()
        people.merge(lib, ("person", a), ("person", b))
        merge_times.append(time.perf_counter() - t0)

    merge_times: list[float] = []
    res = {
        "name a face (new person)": timed(
            lambda i: people.create_person(lib, f"N{tag}{i}", [next(spare)]), repeat
        ),
        "rename a person": timed(
            lambda i: people.rename_person(lib, anna, f"Anna {tag}{i}"), repeat
        ),
        "move a face": timed(lambda i: people.move_faces(lib, [next(spare)], anna), repeat),
        "reject a face": timed(
            lambda i: people.reject_faces(lib, [ids[i]], anna), min(repeat, merge_n // 2)
        ),
        "undo": timed(lambda i: oplog.undo(lib), repeat),
    }
    for i in range(repeat):
        merge_round(i)
    res[f"merge {merge_n} faces"] = merge_times
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=20_000)
    ap.add_argument("--merge", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    args.faces = max(args.faces, 2 * args.merge * args.repeat + 4 * args.repeat + 1000)
    results = {}
    for tag, durable in (("normal", False), ("full", True)):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:  # a fresh library each
            lib = build(Path(tmp) / "bench.sqlite", args.faces)
            with commits(lib, durable):
                results[tag] = run(lib, args.merge, args.repeat, tag)
            lib.close()
    print(f"{args.faces:,} faces; median (max) ms over {args.repeat} runs")
    print(f"{'operation':<28} {'NORMAL (before)':>17} {'FULL (now)':>17} {'cost':>8}")
    summary = {}
    for op in results["full"]:
        n, f = results["normal"][op], results["full"][op]
        mn, mf = statistics.median(n) * 1000, statistics.median(f) * 1000
        summary[op] = {"normal_ms": mn, "full_ms": mf, "full_max_ms": max(f) * 1000}
        print(
            f"{op:<28} {mn:>8.1f} ({max(n) * 1000:>6.1f}) {mf:>8.1f} ({max(f) * 1000:>6.1f})"
            f" {mf - mn:>+7.1f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "durable_commit.json").write_text(
        json.dumps({"faces": args.faces, "merge": args.merge, "results": summary}, indent=1)
    )


if __name__ == "__main__":
    main()
