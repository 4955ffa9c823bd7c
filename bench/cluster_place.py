"""New faces placed into a large grouped library without a regroup.

A SQLite library of --faces faces (real LFW embeddings plus synthetic identities, as
bench/cluster_scale.py makes them) is grouped as by identity (every identity of at
least 4 faces is a cluster: what a perfect regroup would give), then --new faces of
the same identities are stored as a scan stores them and
``cluster.place_if_large`` places them: first cold (as the CLI after a scan: every
embedding is read from SQLite once), then again with --new more faces warm (as the
GUI, which keeps the embeddings in memory and reads only the new ones). Prints time and where the
faces went; writes bench/results/cluster_place.json.

    python bench/cluster_place.py --library LIB [--faces 1000000] [--new 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster_data import RESULTS, load, synthetic
from faceapp.engine import cluster
from faceapp.engine.cluster_place import SEEN_KEY
from faceapp.engine.library import Library
from faceapp.engine.library_photos import NewFace


def build(path: Path, x: np.ndarray, truth: np.ndarray) -> None:
    """Rows written directly (one photo per face), clusters = identities of 4+ faces."""
    lib = Library(path)
    model = lib.add_model(
        name="bench", source="bench", origin="synthetic", sha256="0", preprocess="fixed",
        threshold=1.1, threshold_source="bench",
    )  # fmt: skip
    sizes = np.bincount(truth)
    cid = np.where(sizes[truth] >= 4, truth + 1, 0)
    now = time.time()
    with lib.transaction() as c:
        c.executemany(
            "INSERT INTO clusters(id, created_at) VALUES (?, ?)",
            [(int(i), now) for i in np.unique(cid[cid > 0])],
        )
        c.executemany(
            "INSERT INTO photos(id, path, size, mtime_ns, status, scanned_at)"
            " VALUES (?, ?, 1, 1, 'ok', ?)",
            [(i + 1, f"{i:07d}.jpg", now) for i in range(len(x))],
        )
        c.executemany(
            "INSERT INTO faces(id, photo_id, x1, y1, x2, y2, landmarks, prob, cluster_id,"
            " created_at) VALUES (?, ?, 0, 0, 10, 10, '[]', 0.9, ?, ?)",
            [(i + 1, i + 1, int(cid[i]) or None, now) for i in range(len(x))],
        )
        c.executemany(
            "INSERT INTO embeddings(face_id, model_id, vector) VALUES (?, ?, ?)",
            ((i + 1, model, x[i].tobytes()) for i in range(len(x))),
        )
    lib.set_active_model(model)
    lib.set_meta(SEEN_KEY, str(len(x)))
    lib.close()


def add_and_place(lib: Library, x: np.ndarray, start: int) -> tuple[float, list[int]]:
    """Store ``x`` as a scan would (one photo each), then time the placement."""
    model = lib.active_model().id
    ids = []
    for i, v in enumerate(x):
        photo = lib.store_photo(
            f"new-{start + i:07d}.jpg", size=1, mtime_ns=1, width=100, height=100,
            content_hash=f"n{start + i}", model_id=model,
            faces=[NewFace((0.0, 0.0, 10.0, 10.0), [[0, 0]] * 5, 0.9, b"j", v)],
        )  # fmt: skip
        ids.append(lib.faces_of_photo(photo)[0].id)
    t = time.perf_counter()
    summary = cluster.place_if_large(lib)
    seconds = time.perf_counter() - t
    print(f"    {summary}", file=sys.stderr)
    return seconds, ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", type=Path, help="a library scanned from lfw-deepfunneled")
    ap.add_argument("--cache", type=Path, help="embedding cache (.npz) instead of a library")
    ap.add_argument("--faces", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=1000)
    args = ap.parse_args()
    load_start = os.getloadavg()
    real = load(args.library, args.cache)
    x, truth = synthetic(real, args.faces + 2 * args.new, seed=5)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(x))
    old, new = order[: args.faces], order[args.faces :]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.sqlite"
        t = time.perf_counter()
        build(path, x[old], truth[old])
        print(f"library of {args.faces} faces written in {time.perf_counter() - t:.0f} s")
        lib = Library(path)
        sizes = np.bincount(truth[old], minlength=truth.max() + 1)
        for label, part in (("cold", new[: args.new]), ("warm", new[args.new :])):
            seconds, ids = add_and_place(lib, x[part], int(part[0]))
            got = dict(
                lib.conn.execute(
                    "SELECT id, IFNULL(cluster_id, 0) FROM faces WHERE id >= ?", (min(ids),)
                ).fetchall()
            )
            placed = np.array([got[i] for i in ids])
            right = placed == np.where(sizes[truth[part]] >= 4, truth[part] + 1, -1)
            could = sizes[truth[part]] >= 4
            row = {
                "when": label,
                "new_faces": len(part),
                "seconds": round(seconds, 2),
                "placed": int((placed > 0).sum()),
                "placed_in_own_identity": int((right & (placed > 0)).sum()),
                "placeable": int(could.sum()),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
            rows.append(row)
            print(
                f"{label:<20} {row['new_faces']} new faces placed in {seconds:.2f} s:"
                f" {row['placed']} joined a group ({row['placed_in_own_identity']} their own;"
                f" {row['placeable']} had one), peak RSS {row['peak_rss_mb']} MB",
                flush=True,
            )
        lib.close()
    out = {"faces": args.faces, "rows": rows, "load_average": [load_start, os.getloadavg()]}
    print(f"load average at start {load_start}, at end {os.getloadavg()}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster_place.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
