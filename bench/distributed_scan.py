"""The same folder scanned locally and on a Ray cluster of processes on 127.0.0.1
(head + two worker nodes of one CPU each): faces, embeddings, time, bytes moved.

    python bench/distributed_scan.py [--photos 40]

Needs Ray (make distributed). On this 2-core machine the cluster cannot be faster
than the local scan: the figure that matters is that the results are the same and
how many bytes each photo sends back to the writer, how fast the one writer stores
(the store stage alone) and how large the library file is per face. Writes
bench/results/distributed_scan.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster_data import LFW, RESULTS
from faceapp.engine import distributed, library, model_versions, pipeline
from faceapp.engine import weights as weights_mod
from faceapp.engine.ray_local import LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kill_checks import faces_with_embeddings


def folder(root: Path, photos: int) -> Path:
    """``photos`` LFW photos of people with several, a few per person."""
    people = sorted(p for p in (LFW / "lfw-deepfunneled").iterdir() if p.is_dir())
    copied = 0
    for person in people:
        files = sorted(person.glob("*.jpg"))[:4]
        if len(files) < 4:
            continue
        (root / person.name).mkdir(parents=True)
        for f in files:
            shutil.copy(f, root / person.name / f.name)
            copied += 1
        if copied >= photos:
            break
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=40)
    args = ap.parse_args()
    load_start = os.getloadavg()
    loaded = weights_mod.resolve_weights(None)
    with tempfile.TemporaryDirectory() as tmp:
        root = folder(Path(tmp) / "photos", args.photos)
        local = library.open_library(root, Path(tmp) / "local.sqlite")
        model_versions.register_base(local, loaded)
        t = time.perf_counter()
        local_report = pipeline.scan(local, root, pipeline.Analyzer.from_weights(loaded, "cpu"))
        local_s = time.perf_counter() - t
        t = time.perf_counter()
        with LocalCluster(workers=2) as cluster:
            start_s = time.perf_counter() - t
            remote = library.open_library(root, Path(tmp) / "ray.sqlite")
            model_versions.register_base(remote, loaded)
            stats: dict = {}
            t = time.perf_counter()
            report = distributed.scan(remote, root, loaded, cluster.address, stats=stats)
            ray_s = time.perf_counter() - t
        a, b = faces_with_embeddings(local), faces_with_embeddings(remote)
        same_boxes = a.keys() == b.keys() and all(len(a[k]) == len(b[k]) for k in a)
        diff = max(
            (
                float(np.abs(va - vb).max())
                for k in a
                for (_, va), (_, vb) in zip(a[k], b.get(k, []), strict=False)
            ),
            default=float("nan"),
        )
        photo_bytes = sum(p.stat().st_size for p in root.rglob("*.jpg"))
        remote.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        library_bytes = Path(remote.path).stat().st_size
    row = {
        "photos": report.photos,
        "faces_local": local_report.faces,
        "faces_ray": report.faces,
        "same_photos_and_face_counts": same_boxes,
        "max_abs_embedding_diff": diff,
        "local_seconds": round(local_s, 1),
        "ray_seconds": round(ray_s, 1),
        "ray_cluster_start_seconds": round(start_s, 1),
        "shards": stats["shards"],
        "result_bytes_per_photo": round(stats["result_bytes"] / max(report.photos, 1)),
        "result_bytes_per_face": round(stats["result_bytes"] / max(report.faces, 1)),
        "photo_file_bytes_per_photo": round(photo_bytes / max(report.photos, 1)),
        "library_bytes_per_face": round(library_bytes / max(report.faces, 1)),
        "store_seconds": round(stats["store_seconds"], 2),
        "writer_photos_per_second": round(report.photos / max(stats["store_seconds"], 1e-9), 1),
        "errors": len(report.errors),
        "load_average_start_end": [load_start, os.getloadavg()],
    }
    print(f"{'':<34}{'local':>10}{'Ray (2 workers)':>18}")
    print(f"{'photos stored':<34}{local_report.photos:>10}{report.photos:>18}")
    print(f"{'faces':<34}{local_report.faces:>10}{report.faces:>18}")
    print(f"{'seconds':<34}{local_s:>10.1f}{ray_s:>18.1f}")
    print(f"same photos and face counts: {same_boxes}; max abs embedding diff {diff:.2e}")
    print(
        f"bytes back to the writer: {row['result_bytes_per_photo']} per photo,"
        f" {row['result_bytes_per_face']} per face (photo files: "
        f"{row['photo_file_bytes_per_photo']} bytes each, read by the workers from the mount)"
    )
    print(
        f"the writer (store stage alone, one transaction per photo):"
        f" {row['writer_photos_per_second']} photos/s; library file"
        f" {row['library_bytes_per_face']} bytes per face"
    )
    print(f"load average at start {load_start}, at end {os.getloadavg()}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed_scan.json").write_text(json.dumps(row, indent=1))
    print(f"wrote {RESULTS / 'distributed_scan.json'}")


if __name__ == "__main__":
    main()
