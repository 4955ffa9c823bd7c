"""Scan throughput: photos/s and faces/s, with the split between decode, detect and embed.

Two sets: (a) LFW images (250x250, one subject each) and (b) large photos, 12 MP
JPEGs with 1-4 LFW faces composited onto 4000x3000 canvases. The end-to-end
figure is a real ``pipeline.scan`` into a fresh library (decoding overlapped with
the networks); the split comes from timing each stage alone on the same files.

    python bench/throughput.py [--lfw-count 1000] [--large-count 200] [--device auto]
        [--splits 1x1,1x2,2x1]

``--splits``: also scan each set with other splits of the cores, written
``AxT`` (A photo batches analysed at once, T torch threads each), side by side
in the same run; the default is the inference plan's split alone.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageFilter

from faceapp.engine import model_versions, pipeline
from faceapp.engine.images import load_image
from faceapp.engine.library import Library

LFW = Path(os.environ.get("FACEAPP_LFW", Path(__file__).resolve().parents[2] / "shared/data/lfw"))
RESULTS = Path(__file__).resolve().parent / "results"


def lfw_images(count: int, seed: int = 0) -> list[Path]:
    files = sorted((LFW / "lfw-deepfunneled").glob("*/*.jpg"))
    return random.Random(seed).sample(files, min(count, len(files)))


def make_large_photos(out: Path, count: int, seed: int = 0) -> list[Path]:
    """12 MP photos: a blurred, scaled LFW scene as background plus 1-4 pasted faces."""
    rng = random.Random(seed)
    sources = lfw_images(4 * count + 50, seed + 1)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = out / f"large_{i:04d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        bg = Image.open(sources[-1 - (i % 50)]).convert("RGB").resize((4000, 3000))
        canvas = bg.filter(ImageFilter.GaussianBlur(12))
        n = rng.randint(1, 4)
        slots = rng.sample(range(4), n)  # quadrants, so faces never overlap
        for k, slot in enumerate(slots):
            face = Image.open(sources[4 * i + k]).convert("RGB")
            side = rng.randint(500, 1200)
            face = face.resize((side, side), Image.Resampling.BICUBIC)
            qx, qy = (slot % 2) * 2000, (slot // 2) * 1500
            x = qx + rng.randint(0, 2000 - min(side, 1500))
            y = qy + rng.randint(0, max(0, 1500 - side))
            canvas.paste(face, (x, min(y, 3000 - side)))
        canvas.save(path, quality=90)
    return paths


def stage_times(analyzer: pipeline.Analyzer, paths: list[Path]) -> dict[str, float]:
    """Seconds per photo for decode, detect and embed, each timed on its own."""
    t = {"decode": 0.0, "detect": 0.0, "embed": 0.0}
    faces = 0
    for path in paths:
        t0 = time.perf_counter()
        img = load_image(path)
        t1 = time.perf_counter()
        boxes = analyzer.detector.detect([img])[0]
        crops = analyzer.detector.crops(img, boxes)
        t2 = time.perf_counter()
        analyzer.embedder.embed(crops)
        t3 = time.perf_counter()
        t["decode"] += t1 - t0
        t["detect"] += t2 - t1
        t["embed"] += t3 - t2
        faces += len(boxes)
    return {k: v / len(paths) for k, v in t.items()} | {"faces_per_photo": faces / len(paths)}


def end_to_end(analyzer: pipeline.Analyzer, loaded, folder: Path, tmp: Path) -> dict[str, float]:
    lib = Library(tmp / f"{folder.name}.sqlite", root=folder)
    model_versions.register_base(lib, loaded)
    report = pipeline.scan(lib, folder, analyzer)
    return {
        "photos": report.photos,
        "faces": report.faces,
        "errors": len(report.errors),
        "seconds": report.seconds,
        "photos_per_s": report.photos / report.seconds,
        "faces_per_s": report.faces / report.seconds,
    }


def with_split(analyzer: pipeline.Analyzer, split: str) -> pipeline.Analyzer:
    """The analyzer with ``AxT``: A batches analysed at once, T torch threads each."""
    workers, threads = (int(n) for n in split.split("x"))
    other = copy.copy(analyzer)
    other.plan = dataclasses.replace(analyzer.plan, analyze_workers=workers, scan_threads=threads)
    return other


def link_folder(paths: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        target = folder / f"{p.parent.name}__{p.name}"
        if not target.exists():
            target.symlink_to(p)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw-count", type=int, default=1000)
    ap.add_argument("--large-count", type=int, default=200)
    ap.add_argument("--stage-sample", type=int, default=40, help="photos timed per stage")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--splits", default="", help="other core splits to compare, e.g. 1x1,1x2")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "faceapp-bench")
    args = ap.parse_args()
    from faceapp.engine.weights import resolve_weights

    loaded = resolve_weights()
    analyzer = pipeline.Analyzer.from_weights(loaded, args.device)
    sets = {
        "lfw": link_folder(lfw_images(args.lfw_count), args.cache / f"lfw{args.lfw_count}"),
        "large_12mp": args.cache / f"large{args.large_count}",
    }
    make_large_photos(sets["large_12mp"], args.large_count)
    plan = analyzer.plan
    splits = [f"{plan.analyze_workers}x{plan.scan_threads or plan.torch_threads}"]
    splits += [s for s in (args.splits.split(",") if args.splits else []) if s not in splits]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in sets.items():
            for k, split in enumerate(splits):  # sets in turn, splits side by side
                variant = with_split(analyzer, split)
                (where := Path(tmp) / f"{name}-{k}").mkdir()
                row = end_to_end(variant, loaded, folder, where)
                rows[name if k == 0 else f"{name} {split}"] = row | {"split": split}
            sample = sorted(folder.iterdir())[: args.stage_sample]
            rows[name] |= {f"{k}_s": v for k, v in stage_times(analyzer, sample).items()}
    import torch

    meta = {"device": str(analyzer.embedder.device), "torch_threads": torch.get_num_threads()}
    meta |= {"split": splits[0], "cpus": os.cpu_count()}
    print(
        f"device {meta['device']}, scan split {splits[0]} (batches at once x torch threads),"
        f" {os.cpu_count()} cpus; stage times (decode/detect/embed) one photo at a time"
        f" on {meta['torch_threads']} torch thread(s)"
    )
    cols = ["photos", "faces", "seconds", "photos_per_s", "faces_per_s"]
    cols += ["decode_s", "detect_s", "embed_s"]
    print(f"{'set':<18}" + "".join(f"{c:>14}" for c in cols))
    for name, row in rows.items():
        cells = (f"{row[c]:>14.3f}" if c in row else " " * 14 for c in cols)
        print(f"{name:<18}" + "".join(cells))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps({"meta": meta, "sets": rows}, indent=2))


if __name__ == "__main__":
    main()
