"""How clustering time and memory grow: 10k, 100k and 300k faces on this machine.

The faces are the real LFW embeddings plus synthetic identities built around them
(real within-person variation placed at new centres, heavy-tailed sizes; see
bench/_cluster_data.py); a fifth of the photos show two or three people, so the
same-photo constraint has work to do. Each size runs in a fresh process so the peak
memory (ru_maxrss) is its own. For the sizes up to --e2e-max the whole
``recluster(lib)`` on a SQLite library is timed too (read embeddings, cluster,
write ids).

    python bench/cluster_scale.py [--library LIB | --cache NPZ] [--sizes 10000,100000,300000]

Writes bench/results/cluster_scale.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster_data import RESULTS, load, synthetic
from faceapp.engine import cluster, neighbours
from faceapp.engine.cluster_metrics import cluster_scores
from faceapp.engine.clustering import ClusterParams, cluster_vectors, pca_reduce
from faceapp.engine.vecmath import normalize, sq_dists


def photo_groups(n: int, seed: int = 0) -> np.ndarray:
    """Photo index per face: about a fifth of the photos hold 2-3 faces."""
    rng = np.random.default_rng(seed)
    photo = np.arange(n)
    multi = rng.choice(n, n // 8, replace=False)
    partners = rng.choice(n, len(multi), replace=False)
    photo[partners] = photo[multi]
    return photo


def distance_profile(x: np.ndarray, truth: np.ndarray, seed: int = 0) -> dict:
    """Percentiles of same-person and different-person squared distances and of the
    distance from a person's centre to the nearest other centre (sampled): how
    realistic the synthetic identities are next to the real ones."""
    rng = np.random.default_rng(seed)
    ids, inv, counts = np.unique(truth, return_inverse=True, return_counts=True)
    order = np.argsort(inv, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    multi = np.flatnonzero(counts >= 2)
    pairs = []
    for k in rng.choice(multi, min(5000, len(multi) * 4)):
        pairs.append(rng.choice(order[starts[k] : starts[k] + counts[k]], 2, replace=False))
    a, b = np.array(pairs).T
    same = ((x[a] - x[b]) ** 2).sum(1)
    i, j = rng.integers(0, len(x), (2, 50_000))
    diff = ((x[i] - x[j]) ** 2).sum(1)[truth[i] != truth[j]]
    cent = np.zeros((len(ids), x.shape[1]))
    np.add.at(cent, inv, x)
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    sel = rng.choice(len(ids), min(1000, len(ids)), replace=False)
    near = np.array([np.sort(((cent - cent[s]) ** 2).sum(1))[1] for s in sel])
    return {
        "same_p10_50_90": np.round(np.percentile(same, [10, 50, 90]), 3).tolist(),
        "different_p1_10_50": np.round(np.percentile(diff, [1, 10, 50]), 3).tolist(),
        "nearest_other_centre_p10_50": np.round(np.percentile(near, [10, 50]), 3).tolist(),
    }


def knn_recall(y: np.ndarray, k: int, queries: int = 1000, seed: int = 0) -> float:
    """Share of the true k nearest neighbours the approximate search finds (sampled)."""
    p = ClusterParams()
    approx, _ = neighbours.knn(y, k, brute_limit=0, nprobe=p.nprobe, seed=seed)
    rng = np.random.default_rng(seed)
    q = rng.choice(len(y), min(queries, len(y)), replace=False)
    exact = []
    for s in range(0, len(q), 100):  # 100 x n distances at a time (0.4 GB at a million)
        d = sq_dists(y[q[s : s + 100]], y)
        d[np.arange(len(d)), q[s : s + 100]] = np.inf
        exact.extend(np.argpartition(d, k, axis=1)[:, :k].copy())  # not views of d-sized arrays
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, approx[q], strict=True)]))


def e2e_library(path: Path, x: np.ndarray, photo: np.ndarray) -> float:
    """A library holding these faces (rows written directly), then ``recluster`` timed."""
    from faceapp.engine.library import Library

    lib = Library(path)
    model = lib.add_model(
        name="bench", source="bench", origin="synthetic", sha256="0", preprocess="fixed",
        threshold=1.1, threshold_source="bench",
    )  # fmt: skip
    now = time.time()
    with lib.transaction() as c:
        photos = np.unique(photo)
        c.executemany(
            "INSERT INTO photos(id, path, size, mtime_ns, status, scanned_at)"
            " VALUES (?, ?, 1, 1, 'ok', ?)",
            [(int(p) + 1, f"{p:07d}.jpg", now) for p in photos],
        )
        c.executemany(
            "INSERT INTO faces(id, photo_id, x1, y1, x2, y2, landmarks, prob, created_at)"
            " VALUES (?, ?, 0, 0, 10, 10, '[]', 0.9, ?)",
            [(i + 1, int(p) + 1, now) for i, p in enumerate(photo)],
        )
        c.executemany(
            "INSERT INTO embeddings(face_id, model_id, vector) VALUES (?, ?, ?)",
            [(i + 1, model, x[i].tobytes()) for i in range(len(x))],
        )
    lib.set_active_model(model)
    lib.close()
    lib = Library(path)
    t = time.perf_counter()
    summary = cluster.recluster(lib)
    seconds = time.perf_counter() - t
    lib.close()
    print(f"    recluster(lib): {summary}", file=sys.stderr)
    return seconds


def child(data: Path, out: Path, e2e: bool) -> None:
    """One size, in its own process: cluster, time, measure."""
    z = np.load(data)
    x, truth, photo = z["x"], z["truth"], z["photo"]
    params = ClusterParams()
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    cpu = time.process_time()
    res = cluster_vectors(x, photo, params, threshold=float(z["threshold"]))
    seconds = time.perf_counter() - t
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = cluster_scores(truth, res.labels)
    row = {
        "faces": len(x),
        "identities": len(np.unique(truth)),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # wall time on a shared machine includes waiting
        "stages": {k: round(v, 2) if isinstance(v, float) else v for k, v in res.stats.items()},
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_before_mb": round(rss_data / 1024, 1),
        "vectors_mb": round(x.nbytes / 2**20, 1),
        "scores": s.as_dict(),
    }
    if res.stats.get("algorithm") == "knn":
        y = pca_reduce(normalize(x), params.pca_dims)
        row["knn_recall"] = round(knn_recall(y, params.knn), 4)
    if e2e:
        with tempfile.TemporaryDirectory() as tmp:
            row["recluster_library_seconds"] = round(
                e2e_library(Path(tmp) / "b.sqlite", x, photo), 2
            )
    out.write_text(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", type=Path, help="a library scanned from lfw-deepfunneled")
    ap.add_argument("--cache", type=Path, help="embedding cache (.npz) instead of a library")
    ap.add_argument("--sizes", default="10000,100000,300000")
    ap.add_argument("--e2e-max", type=int, default=100_000, help="largest size for recluster(lib)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.child[2] == "1")
        return

    load_at_start = os.getloadavg()
    print(f"load average at start: {load_at_start}")
    real = load(args.library, args.cache)
    print(f"real embeddings: {real.source}")
    x, truth = synthetic(real, 60_000, seed=1)
    n_real = int(real.subject.sum())
    profile = {
        "real": distance_profile(x[:n_real], truth[:n_real]),
        "synthetic": distance_profile(x[n_real:], truth[n_real:]),
    }
    for k, v in profile.items():
        print(f"  {k:<9} squared distances: {v}")
    del x, truth
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            x, truth = synthetic(real, n, seed=n)
            photo = photo_groups(n, seed=n)
            data, out = Path(tmp) / f"{n}.npz", Path(tmp) / f"{n}.json"
            np.savez(data, x=x, truth=truth, photo=photo, threshold=real.threshold)
            del x, truth, photo
            e2e = "1" if n <= args.e2e_max else "0"
            cmd = [sys.executable, __file__, "--child", str(data), str(out), e2e]
            subprocess.run(cmd, check=True)
            row = json.loads(out.read_text())
            rows.append(row)
            st = row["stages"]
            print(
                f"{row['faces']:>7} faces  {row['identities']:>6} identities  "
                f"{row['seconds']:>6.1f} s ({row['cpu_seconds']:.0f} s CPU)  (pca "
                f"{st.get('pca_s', 0):.1f}, hdbscan "
                f"{st.get('hdbscan_s', 0):.1f} [{st.get('algorithm')}], after "
                f"{st.get('post_s', 0):.1f})  peak RSS {row['peak_rss_mb']:.0f} MB  "
                f"B3 F {row['scores']['bcubed_f']:.3f}  unknown "
                f"{row['scores']['unknown_fraction']:.1%}"
                + (f"  kNN recall {row['knn_recall']:.3f}" if "knn_recall" in row else "")
                + (
                    f"  recluster(lib) {row['recluster_library_seconds']:.1f} s"
                    if "recluster_library_seconds" in row
                    else ""
                ),
                flush=True,
            )
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "real_source": real.source,
        "distance_profile": profile,
        "params": dataclasses.asdict(ClusterParams()),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster_scale.json").write_text(json.dumps(result, indent=1))
    print(f"load average at end: {os.getloadavg()} (other work on the machine slows every figure)")
    print(f"wrote {RESULTS / 'cluster_scale.json'}")


if __name__ == "__main__":
    main()
