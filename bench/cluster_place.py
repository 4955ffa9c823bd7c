"""New faces placed into a large grouped library without a regroup: old and new way.

A SQLite library of --faces faces (real LFW embeddings plus synthetic identities, as
bench/cluster_scale.py makes them) is grouped as by identity (every identity of at
least 4 faces is a cluster: what a perfect regroup would give), and the centres are
kept as a regroup keeps them (``group_centres.rebuild``, timed). Then, twice, --new
faces of the same identities are stored as a scan stores them and placed two ways,
side by side on the same library:

- old: what placement did before the centres were kept: every embedding read
  (``load_state``; the first time from SQLite, the second from the process's
  in-memory copy, as the GUI holds it) and every cluster centroid recomputed, then
  the nearest centroid of each new face (no people and one face per photo here, so
  the old hold and same-photo steps had nothing to do and are left out);
- new: ``cluster.place_if_large``: only the new faces read, the kept centres
  synced and searched with faiss, the joined clusters' centres updated.

Both must make the same choices. Prints time and where the faces went; writes
bench/results/cluster_place.json.

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
from faceapp.engine import cluster, face_state, group_centres
from faceapp.engine.cluster_place import SEEN_KEY
from faceapp.engine.face_state import load_state
from faceapp.engine.library import Library
from faceapp.engine.library_photos import NewFace
from faceapp.engine.vecmath import normalize, sq_dists, sum_by_label


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


def add(lib: Library, x: np.ndarray, start: int) -> list[int]:
    """Store ``x`` as a scan would (one photo each); their face ids."""
    model = lib.active_model().id
    ids = []
    for i, v in enumerate(x):
        photo = lib.store_photo(
            f"new-{start + i:07d}.jpg", size=1, mtime_ns=1, width=100, height=100,
            content_hash=f"n{start + i}", model_id=model,
            faces=[NewFace((0.0, 0.0, 10.0, 10.0), [[0, 0]] * 5, 0.9, b"j", v)],
        )  # fmt: skip
        ids.append(lib.faces_of_photo(photo)[0].id)
    return ids


def old_choice(lib: Library, ids: list[int], threshold: float) -> tuple[float, np.ndarray]:
    """The placement before centres were kept: every embedding and every centroid."""
    t = time.perf_counter()
    state = load_state(lib)
    members = np.flatnonzero((state.cluster > 0) & (state.person == 0))
    cids, index = np.unique(state.cluster[members], return_inverse=True)
    cent = normalize(sum_by_label(state.vectors[members], index, len(cids)))
    q = state.vectors[np.searchsorted(state.ids, ids)]
    d = sq_dists(q, cent, np.einsum("ij,ij->i", cent, cent))
    j = np.argmin(d, axis=1)
    limit = cluster.ClusterParams().trim_ratio * threshold
    choice = np.where(d[np.arange(len(j)), j] < limit, cids[j], 0)
    return time.perf_counter() - t, choice


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
        t = time.perf_counter()
        group_centres.rebuild(lib)  # as the regroup does at its end
        keep_s = time.perf_counter() - t
        n_centres = lib.conn.execute("SELECT COUNT(*) FROM cluster_centres").fetchone()[0]
        print(f"centres of {n_centres} clusters kept in {keep_s:.1f} s (once per regroup)")
        lib.close()
        face_state._vector_cache.clear()  # a new process: nothing in memory
        lib = Library(path)
        threshold = lib.active_model().threshold
        sizes = np.bincount(truth[old], minlength=truth.max() + 1)
        for label, part in (("first", new[: args.new]), ("second", new[args.new :])):
            ids = add(lib, x[part], int(part[0]))
            old_s, old_pick = old_choice(lib, ids, threshold)
            t = time.perf_counter()
            summary = cluster.place_if_large(lib)
            new_s = time.perf_counter() - t
            print(f"    {summary}", file=sys.stderr)
            got = dict(
                lib.conn.execute(
                    "SELECT id, IFNULL(cluster_id, 0) FROM faces WHERE id >= ?", (min(ids),)
                ).fetchall()
            )
            placed = np.array([got[i] for i in ids])
            right = placed == np.where(sizes[truth[part]] >= 4, truth[part] + 1, -1)
            row = {
                "batch": label,
                "new_faces": len(part),
                "old_seconds": round(old_s, 2),
                "old_reads": "SQLite" if label == "first" else "memory",
                "new_seconds": round(new_s, 2),
                "same_choice": int((placed == old_pick).sum()),
                "placed": int((placed > 0).sum()),
                "placed_in_own_identity": int((right & (placed > 0)).sum()),
                "placeable": int((sizes[truth[part]] >= 4).sum()),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "load_average": os.getloadavg(),
            }
            rows.append(row)
            print(
                f"{label} {row['new_faces']} new faces: old {old_s:.2f} s (embeddings from"
                f" {row['old_reads']}), new {new_s:.2f} s; same choice for"
                f" {row['same_choice']}; {row['placed']} joined a group"
                f" ({row['placed_in_own_identity']} their own; {row['placeable']} had one);"
                f" load {row['load_average'][0]:.1f}",
                flush=True,
            )
        lib.close()
    out = {
        "faces": args.faces,
        "clusters": n_centres,
        "keep_centres_seconds": round(keep_s, 2),
        "rows": rows,
        "cpus": os.cpu_count(),
        "load_average": [load_start, os.getloadavg()],
    }
    print(f"load average at start {load_start}, at end {os.getloadavg()}; peak RSS"
          f" {rows[-1]['peak_rss_mb']} MB (the old way's vectors)")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster_place.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
