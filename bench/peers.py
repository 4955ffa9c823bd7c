"""The app against its peers on one album: speed, peak memory and clustering quality.

Three pipelines see the same photos, each in a fresh process, interleaved (app,
librephotos, facenet, app, ...):
- app: the engine's scan and grouping, as ``faceapp scan`` then ``faceapp cluster`` do
  (MTCNN on a ~1000 px copy, FaceNet with the app's weights, the app's HDBSCAN steps);
- librephotos: LibrePhotos' pipeline, face_recognition (dlib HOG + 128-d encodings) on
  a 1080 px thumbnail and HDBSCAN set as LibrePhotos sets it (bench/peers_run.py says
  where each setting comes from);
- facenet: the stock facenet-pytorch pipeline of its README (MTCNN on the full photo,
  InceptionResnetV1 with the app's weights) and DBSCAN as FaceNet's clustering recipe.
The peers run with their own packages in bench/.peers-venv, made here on first use
(pip; git-ignored), so the app's environment stays clean; a peer that cannot be
installed or run is skipped with a one-line reason.

The album: LFW people composited by bench/album_effort.py's builder (several albums
with other seeds when more photos are asked for), a share of them enlarged onto 12 MP
canvases. Quality is BCubed over the faces pasted into the album: a face no detection
matched counts as a cluster of its own, detections that match no pasted face are
counted apart. Speed: photos / seconds from the first photo to the last cluster label
(models loaded before; the whole process's wall time is listed too).

    python bench/peers.py [--photos 40] [--large-share 0.5] [--repeats 1]
    python bench/peers.py --pipelines app,librephotos --no-install
Prints a table (and BCubed recall by how many faces each person has in the album)
and writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import album_effort  # noqa: E402
from faceapp.engine.cluster_metrics import cluster_scores  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VENV = ROOT / "bench" / ".peers-venv"
RUNNER = ROOT / "bench" / "peers_run.py"
PIPELINES = ("app", "librephotos", "facenet")
LARGE = (4000, 3000)  # 12 MP

# What each peer needs in the venv: pip steps, then the import that proves it works.
# face_recognition declares "dlib", which pip would build from source: dlib-bin ships
# the same module as a wheel, so face_recognition itself goes in without its deps.
# face_recognition_models still imports pkg_resources (setuptools < 81, in every step:
# torch asks for setuptools too). face_recognition quits with status 0 when it cannot
# load its models, so the check imports face_recognition_models first.
PEER_PACKAGES = {
    "librephotos": (
        [
            ["numpy", "Pillow", "scikit-learn", "hdbscan", "dlib-bin", "click", "setuptools<81"],
            ["face-recognition-models", "setuptools<81"],
            ["--no-deps", "face_recognition==1.3.0"],
        ],
        "import face_recognition_models, face_recognition, hdbscan",
    ),
    "facenet": (
        [
            [
                "torch==2.14.1",
                "torchvision==0.29.1",
                "facenet-pytorch==2.5.3",
                "scikit-learn",
                "setuptools<81",
            ]
        ],
        "import facenet_pytorch, sklearn",
    ),
}


# -- the peers' venv ----------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no message"


def peer_python(install: bool) -> tuple[Path | None, str]:
    """The venv's python (created when missing and ``install``), or None and why not."""
    python = VENV / "bin" / "python"
    if python.exists():
        return python, ""
    if not install:
        return None, f"no {VENV.relative_to(ROOT)} (run without --no-install to make it)"
    base = getattr(sys, "_base_executable", sys.executable)
    done = subprocess.run([base, "-m", "venv", str(VENV)], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"could not make the venv: {_last_line(done.stderr)}"
    return python, ""


def ready(peer: str, python: Path | None, install: bool) -> str:
    """'' when the peer can run, else the one-line reason it is skipped."""
    if python is None:
        return "no venv"
    steps, check = PEER_PACKAGES[peer]

    def works() -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-c", check], capture_output=True, text=True)

    probe = works()
    if probe.returncode == 0:
        return ""
    if not install:
        return f"{check!r} fails in the venv: {_last_line(probe.stderr)}"
    for step in steps:
        print(f"installing for {peer}: {' '.join(step)}", flush=True)
        pip = [str(python), "-m", "pip", "install", "-q", *step]
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode != 0:
            return f"pip install {' '.join(step)} failed: {_last_line(done.stderr)}"
    probe = works()
    return "" if probe.returncode == 0 else f"{check!r} fails: {_last_line(probe.stderr)}"


# -- the album ----------------------------------------------------------------------------


def _enlarge(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, float, int, int]:
    """The photo scaled up onto a 12 MP canvas of its own background shade:
    (canvas, scale, x offset, y offset)."""
    w, h = img.size
    scale = min(LARGE[0] / w, LARGE[1] / h) * float(rng.uniform(0.6, 0.95))
    fg = img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", LARGE, img.getpixel((0, 0)))
    x = int(rng.integers(0, LARGE[0] - fg.width + 1))
    y = int(rng.integers(0, LARGE[1] - fg.height + 1))
    canvas.paste(fg, (x, y))
    return canvas, scale, x, y


def build_album(folder: Path, photos: int, large_share: float, seed: int = 0) -> list[dict]:
    """``photos`` album photos in ``folder``; the truth: per photo its file and pasted faces
    (``name``, ``paste`` box in the photo's pixels). An evenly spread ``large_share`` of
    them is enlarged onto 12 MP canvases."""
    rng = np.random.default_rng(seed)
    truth: list[dict] = []
    part = 0
    while len(truth) < photos:
        src = folder / f".part{part}"
        built = album_effort.build(src, album_effort.SMALL_MIN, seed=seed + part)
        for entry in built[: photos - len(truth)]:
            i = len(truth)
            large = int((i + 1) * large_share) > int(i * large_share)
            name = f"a{part}_{entry['path']}"
            faces = [{"name": f["name"], "paste": f["paste"]} for f in entry["faces"]]
            if large:
                with Image.open(src / entry["path"]) as img:
                    canvas, s, x, y = _enlarge(img.convert("RGB"), rng)
                canvas.save(folder / name, quality=90)
                for f in faces:
                    x1, y1, x2, y2 = f["paste"]
                    f["paste"] = [x + x1 * s, y + y1 * s, x + x2 * s, y + y2 * s]
            else:
                (src / entry["path"]).rename(folder / name)
            truth.append({"path": name, "large": large, "faces": faces})
        for leftover in src.iterdir():
            leftover.unlink()
        src.rmdir()
        part += 1
    return truth


# -- scoring ------------------------------------------------------------------------------


def score(truth: list[dict], faces: list[dict]) -> dict:
    """Detections matched to the pasted faces (box centre inside a pasted square), then
    BCubed over all pasted faces (missed: a cluster of one each) and over the found ones."""
    found: dict[str, list[dict]] = {}
    for f in faces:
        found.setdefault(f["photo"], []).append(f)
    names, labels, hit = [], [], []
    other = 0
    for photo in truth:
        pred = [-1] * len(photo["faces"])
        used: set[int] = set()
        for det in found.get(photo["path"], []):
            x1, y1, x2, y2 = det["box"]
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            k = next(
                (
                    k
                    for k, t in enumerate(photo["faces"])
                    if k not in used
                    and t["paste"][0] <= cx <= t["paste"][2]
                    and t["paste"][1] <= cy <= t["paste"][3]
                ),
                None,
            )
            if k is None:
                other += 1
                continue
            used.add(k)
            pred[k] = det["label"]
        names += [t["name"] for t in photo["faces"]]
        labels += pred
        hit += [k in used for k in range(len(photo["faces"]))]
    truth_ids, pred_ids, found_mask = np.array(names), np.array(labels), np.array(hit)
    every = cluster_scores(truth_ids, pred_ids)
    among_found = cluster_scores(truth_ids[found_mask], pred_ids[found_mask])
    return {
        "album_faces": len(names),
        "found": int(found_mask.sum()),
        "found_share": round(float(found_mask.mean()), 4) if len(names) else 0.0,
        "other_detections": other,
        "clusters": every.clusters,
        "bcubed_precision": round(every.bcubed_precision, 4),
        "bcubed_recall": round(every.bcubed_recall, 4),
        "bcubed_f": round(every.bcubed_f, 4),
        "bcubed_f_found": round(among_found.bcubed_f, 4),
    }


BUCKETS = ((1, 1), (2, 3), (4, 10**9))  # faces a person has in the album


def recall_by_count(truth: list[dict], faces: list[dict]) -> dict[str, float]:
    """BCubed recall over the faces of people with 1, 2-3 and 4+ faces in the album:
    where a minimum group size shows."""
    counts: dict[str, int] = {}
    for photo in truth:
        for f in photo["faces"]:
            counts[f["name"]] = counts.get(f["name"], 0) + 1
    out = {}
    for lo, hi in BUCKETS:
        sub = [
            p | {"faces": [f for f in p["faces"] if lo <= counts[f["name"]] <= hi]} for p in truth
        ]
        label = f"{lo}" if lo == hi else f"{lo}+" if hi > 1000 else f"{lo}-{hi}"
        if any(p["faces"] for p in sub):
            out[label] = score(sub, faces)["bcubed_recall"]
    return out


# -- running ------------------------------------------------------------------------------


def run_app(folder: Path, out: Path) -> None:
    """The app's side, in its own process: scan into a fresh library, then group."""
    from faceapp.engine import pipeline
    from faceapp.engine.cluster import recluster
    from faceapp.engine.library import Library

    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp) / "library.sqlite", root=folder)
        analyzer = pipeline.analyzer_for_library(lib, device="cpu")
        t = time.perf_counter()
        pipeline.scan(lib, folder, analyzer)
        recluster(lib)
        seconds = time.perf_counter() - t
        faces = [
            {
                "photo": Path(f.photo_path).name,
                "box": list(f.box),
                "label": f.cluster_id if f.cluster_id is not None else -1,
            }
            for f in lib.faces()
        ]
        lib.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = {"device": "cpu", "weights": analyzer.threshold_source}
    out.write_text(
        json.dumps(
            {
                "photos": len(os.listdir(folder)),
                "seconds": seconds,
                "peak_rss_mb": peak_kb / 1024,
                "settings": settings,
                "faces": faces,
            }
        )
    )


def command(pipeline: str, folder: Path, out: Path, weights: Path | None) -> list[str]:
    if pipeline == "app":
        return [sys.executable, str(Path(__file__).resolve()), "--child-app", str(folder), str(out)]
    cmd = [str(VENV / "bin" / "python"), str(RUNNER), pipeline, str(folder), str(out)]
    return cmd + (["--weights", str(weights)] if pipeline == "facenet" and weights else [])


def run_once(pipeline: str, folder: Path, tmp: Path, weights: Path | None) -> dict:
    """One run in a fresh process: the runner's JSON plus the process's wall time, or
    ``{"error": one line}``."""
    out = tmp / f"{pipeline}.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    if pipeline == "app":  # its backups and settings stay in the temporary folder
        from faceapp.engine.weights import weights_cache_dir

        env["FACEAPP_WEIGHTS_CACHE"] = str(weights_cache_dir())
        env["FACEAPP_DATA_DIR"] = str(tmp / "app-data")
    else:  # nothing of the app's environment
        env.pop("PYTHONPATH", None)
    t = time.perf_counter()
    done = subprocess.run(
        command(pipeline, folder, out, weights), capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t
    if done.returncode != 0 or not out.exists():
        why = _last_line(done.stderr if done.stderr.strip() else done.stdout)
        return {"error": f"exit {done.returncode}: {why}"}
    return json.loads(out.read_text()) | {"wall_seconds": wall}


def app_weights() -> tuple[Path | None, str]:
    """The app's embedder weights file, for the stock facenet pipeline (or why none)."""
    from faceapp.engine.weights import resolve_weights

    loaded = resolve_weights()
    if loaded.file is None:
        return None, f"the app's weights ({loaded.source}) are not a file"
    if loaded.preprocess != "fixed":
        return None, f"the app's weights expect {loaded.preprocess!r} input, MTCNN gives 'fixed'"
    return loaded.file, loaded.source


# -- the table ----------------------------------------------------------------------------

COLS = [
    ("photos_per_s", "photos/s", "{:.2f}"),
    ("seconds", "seconds", "{:.1f}"),
    ("wall_seconds", "wall s", "{:.1f}"),
    ("peak_rss_mb", "peak MB", "{:.0f}"),
    ("found", "found", "{}"),
    ("other_detections", "other", "{}"),
    ("clusters", "groups", "{}"),
    ("bcubed_precision", "B3 P", "{:.3f}"),
    ("bcubed_recall", "B3 R", "{:.3f}"),
    ("bcubed_f", "B3 F", "{:.3f}"),
    ("bcubed_f_found", "F found", "{:.3f}"),
]


def summarise(runs: list[dict], truth: list[dict]) -> dict:
    """Median speed over the runs, the highest peak, the quality of the first run."""
    photos = runs[0]["photos"]
    row = {
        "photos_per_s": round(statistics.median(photos / r["seconds"] for r in runs), 3),
        "seconds": round(statistics.median(r["seconds"] for r in runs), 1),
        "wall_seconds": round(statistics.median(r["wall_seconds"] for r in runs), 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
        "faces": len(runs[0]["faces"]),
    }
    by_count = {"recall_by_faces_per_person": recall_by_count(truth, runs[0]["faces"])}
    return row | score(truth, runs[0]["faces"]) | by_count


def print_table(rows: dict[str, dict], skipped: dict[str, str]) -> None:
    print(f"\n{'pipeline':<12}" + "".join(f"{h:>10}" for _, h, _ in COLS))
    for name, row in rows.items():
        print(f"{name:<12}" + "".join(f"{fmt.format(row[k]):>10}" for k, _, fmt in COLS))
    for name, why in skipped.items():
        print(f"{name:<12}skipped: {why}")
    print("\nBCubed recall by faces per person in the album")
    for name, row in rows.items():
        cells = "  ".join(f"{k}: {v:.3f}" for k, v in row["recall_by_faces_per_person"].items())
        print(f"{name:<12}{cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=40, help="photos in the album")
    ap.add_argument(
        "--large-share", type=float, default=0.5, help="share of them enlarged to 12 MP"
    )
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds")
    ap.add_argument("--pipelines", default=",".join(PIPELINES), help="app,librephotos,facenet")
    ap.add_argument("--no-install", action="store_true", help="never create or fill the venv")
    ap.add_argument("--child-app", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_app:
        run_app(*args.child_app)
        return
    if not (album_effort.LFW / "lfw-deepfunneled").is_dir():
        sys.exit(f"LFW not found at {album_effort.LFW}")
    chosen = [p for p in args.pipelines.split(",") if p]
    unknown = set(chosen) - set(PIPELINES)
    if unknown:
        sys.exit(f"unknown pipelines: {', '.join(sorted(unknown))}")

    skipped: dict[str, str] = {}
    peers = [p for p in chosen if p != "app"]
    if peers:
        python, why = peer_python(not args.no_install)
        for peer in peers:
            reason = why or ready(peer, python, not args.no_install)
            if reason:
                skipped[peer] = reason
    weights: Path | None = None
    if "facenet" in chosen and "facenet" not in skipped:
        weights, source = app_weights()
        if weights is None:
            skipped["facenet"] = source
    running = [p for p in chosen if p not in skipped]
    for name, why in skipped.items():
        print(f"{name}: skipped: {why}", flush=True)

    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {p: [] for p in running}
    with tempfile.TemporaryDirectory(prefix="faceapp-peers-") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "album"
        folder.mkdir()
        t = time.perf_counter()
        truth = build_album(folder, args.photos, args.large_share)
        faces = sum(len(p["faces"]) for p in truth)
        large = sum(p["large"] for p in truth)
        print(
            f"album: {len(truth)} photos ({large} of 12 MP), {faces} faces of "
            f"{len({f['name'] for p in truth for f in p['faces']})} people, built in "
            f"{time.perf_counter() - t:.0f} s",
            flush=True,
        )
        for round_ in range(args.repeats):
            for name in list(runs):
                if name in skipped:
                    continue
                result = run_once(name, folder, tmp, weights)
                if "error" in result:
                    skipped[name] = result["error"]
                    print(f"{name}: failed, skipped from now on: {result['error']}", flush=True)
                    continue
                runs[name].append(result)
                print(
                    f"round {round_ + 1} {name}: {result['photos'] / result['seconds']:.2f}"
                    f" photos/s, {len(result['faces'])} faces, peak {result['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    rows = {name: summarise(r, truth) for name, r in runs.items() if r}
    load_after = os.getloadavg()
    print_table(rows, skipped)
    print(
        f"\n{os.cpu_count()} cpus; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (other work shares the machine: figures are noisy)"
    )
    meta = {
        "photos": len(truth),
        "large_photos": large,
        "album_faces": faces,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    out = {
        "meta": meta,
        "pipelines": {
            name: {
                "summary": rows[name],
                "settings": r[0]["settings"],
                "runs": [{k: v for k, v in run.items() if k != "faces"} for run in r],
                "faces": r[0]["faces"],  # of the first run: photo, box, cluster label
            }
            for name, r in runs.items()
            if r
        },
        "skipped": skipped,
        "truth": truth,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS / 'peers.json'}")


if __name__ == "__main__":
    main()
