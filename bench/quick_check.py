"""What the quick check costs when a library is opened, on a synthetic 1M-face library.

The library is built with the real schema (one face per photo, a 512-d float32
embedding and a 2 KB crop per face, 5% of the faces named) straight through SQL, then
reopened cold-ish (a fresh process per timing). Timed, best of --repeat:
- ``bare``: sqlite3.connect + reading the schema (what any open costs),
- ``check_file``: the raw-file part of the quick check (header, size, freelist, last page),
- ``check_schema``: the SQLite part (schema, first and last entry of every b-tree),
- ``Library()``: the whole open as the app does it (both checks included).
With --full, ``PRAGMA quick_check`` once, to show what a whole-file check would cost.

    python bench/quick_check.py [--faces 1000000] [--path /tmp/faces-1m.sqlite] [--full]

Writes bench/results/quick_check.json. Reuses the library at --path if it is there.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from faceapp.engine.library import Library  # noqa: E402

RESULTS = REPO / "bench" / "results"


def build(path: Path, faces: int) -> None:
    lib = Library(path, root=path.parent)
    mid = lib.add_model(
        name="bench",
        source="random-dev",
        origin="bench",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=1.0,
        threshold_source="bench",
    )
    lib.set_active_model(mid)
    lib.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    rng = np.random.default_rng(0)
    crop = rng.bytes(2048)
    people = max(1, faces // 200)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO people(id, name, created_at) VALUES (?, ?, 0)",
        [(i + 1, f"Person {i}") for i in range(people)],
    )
    conn.execute("COMMIT")
    chunk = 20_000
    for start in range(0, faces, chunk):
        n = min(chunk, faces - start)
        ids = range(start + 1, start + n + 1)
        vectors = rng.standard_normal((n, 512)).astype(np.float32)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO photos(id, path, size, mtime_ns, width, height, content_hash, status,"
            " scanned_at) VALUES (?, ?, 1, 1, 640, 480, ?, 'ok', 0)",
            [(i, f"album/{i // 1000:04d}/IMG_{i:07d}.jpg", f"{i:032x}") for i in ids],
        )
        conn.executemany(
            "INSERT INTO faces(id, photo_id, x1, y1, x2, y2, landmarks, prob, person_id,"
            " created_at) VALUES (?, ?, 1, 1, 90, 90, '[]', 0.99, ?, 0)",
            [(i, i, (i % people) + 1 if i % 20 == 0 else None) for i in ids],
        )
        conn.executemany(
            "INSERT INTO face_crops(face_id, jpeg) VALUES (?, ?)", [(i, crop) for i in ids]
        )
        conn.executemany(
            "INSERT INTO embeddings(face_id, model_id, vector) VALUES (?, ?, ?)",
            [(i, mid, v.tobytes()) for i, v in zip(ids, vectors, strict=True)],
        )
        conn.execute("COMMIT")
        print(f"\r{start + n:,} faces", end="", file=sys.stderr, flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(file=sys.stderr)


TIMER = """
import sqlite3, sys, time
from pathlib import Path
from faceapp.engine import check
from faceapp.engine.library import Library
path, what = Path(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
if what == "bare":
    c = sqlite3.connect(path); c.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
elif what == "check_file":
    check.check_file(path)
elif what == "check_schema":
    c = sqlite3.connect(path); check.check_schema(c, path)
elif what == "Library()":
    Library(path, create=False).close()
elif what == "PRAGMA quick_check":
    assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone()[0] == "ok"
print(time.perf_counter() - t0)
"""


def timed(path: Path, what: str) -> float:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", TIMER, str(path), what],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=1_000_000)
    ap.add_argument("--path", type=Path, default=Path("/tmp/faceapp-bench-1m.sqlite"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also time PRAGMA quick_check")
    args = ap.parse_args()
    if not args.path.exists():
        t0 = time.perf_counter()
        build(args.path, args.faces)
        print(f"built {args.path} in {time.perf_counter() - t0:.0f} s")
    size = args.path.stat().st_size
    faces = sqlite3.connect(args.path).execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    rows = ["bare", "check_file", "check_schema", "Library()"]
    rows += ["PRAGMA quick_check"] if args.full else []
    results = {}
    print(f"{faces:,} faces, {size / 2**30:.2f} GiB")
    print(f"{'what':<20} {'best ms':>9} {'median ms':>10}")
    for what in rows:
        repeat = 1 if what == "PRAGMA quick_check" else args.repeat  # it reads every page
        times = sorted(timed(args.path, what) for _ in range(repeat))
        results[what] = {"best_s": times[0], "median_s": times[len(times) // 2]}
        print(f"{what:<20} {times[0] * 1000:>9.1f} {times[len(times) // 2] * 1000:>10.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"faces": faces, "bytes": size, "results": results}
    (RESULTS / "quick_check.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
