"""Small faces: detection recall by face size, photos/s and clustering quality for each
detection plan, on group photos of 12 MP.

The album: LFW deep-funneled faces of recurring people composited onto 4000x3000
canvases (a blurred LFW scene as background), 3-10 faces per photo, face sizes drawn
evenly from the bins 40-60, 60-80, 80-120 and 120-160 px (the face box, ~0.72 of the
pasted square), a fifth of them blurred and a fifth darkened. Deterministic (seed);
written under bench/results/small_faces/ (never into the repository).

Each detection plan scans the album with the app's own pipeline into a fresh library
(decode overlapped with the networks, as a real scan) and is scored:
* recall by face size: a pasted face counts as found when a stored face's centre lies
  in its face box (one stored face per pasted face);
* photos/s of the scan (the machine is shared and busy: compare rows of one run);
* clustering (the app's cluster_vectors with its defaults and the model threshold):
  BCubed F over every found face, over the faces the plan leaves to clustering (small
  ones left out), and over the faces the old plan finds, to see whether the extra
  small faces harm the others.

    python bench/small_faces.py [--photos 48] [--plans before,after,...] [--rebuild]
Prints a table and writes bench/results/small_faces.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceapp.engine import model_versions, pipeline  # noqa: E402
from faceapp.engine.cluster_metrics import cluster_scores  # noqa: E402
from faceapp.engine.clustering import cluster_vectors  # noqa: E402
from faceapp.engine.library import Library  # noqa: E402
from faceapp.engine.second_look import DEFAULT, SecondLook  # noqa: E402
from faceapp.engine.vecmath import sq_dists  # noqa: E402
from faceapp.engine.weights import resolve_weights  # noqa: E402

LFW = Path(os.environ.get("FACEAPP_LFW", ROOT.parent / "shared" / "data" / "lfw"))
RESULTS = ROOT / "bench" / "results"
BINS = ((40, 60), (60, 80), (80, 120), (120, 161))
W, H = 4000, 3000
# The square of a 250 px deep-funneled LFW image that is pasted (the face with some
# hair, neck and background around it, as in a real photo), and where the face lies
# in it (fractions of the pasted square; the face box of bench/album_effort.py).
PASTE_SRC = (25, 20, 225, 220)
FACE_IN_PASTE = (0.23, 0.2, 0.77, 0.815)
FACE_SHARE = FACE_IN_PASTE[2] - FACE_IN_PASTE[0]


def choose_people(rng: np.random.Generator, count: int) -> dict[str, list[Path]]:
    """``count`` people with at least 8 LFW photos, and their photos."""
    folder = LFW / "lfw-deepfunneled"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    many = [n for n in names if len(list((folder / n).glob("*.jpg"))) >= 8]
    chosen = rng.choice(many, count, replace=False).tolist()
    return {n: sorted((folder / n).glob("*.jpg")) for n in sorted(chosen)}


def _paste_face(
    canvas: Image.Image, src: Path, size: int, at: tuple[int, int], blur: float, dark: float
) -> None:
    """Paste an LFW face so that its face box is ``size`` px, with a feathered edge."""
    side = round(size / FACE_SHARE)
    with Image.open(src) as im:
        face = im.convert("RGB").crop(PASTE_SRC).resize((side, side), Image.Resampling.LANCZOS)
    if blur:
        face = face.filter(ImageFilter.GaussianBlur(blur))
    if dark:
        face = ImageEnhance.Brightness(face).enhance(dark)
    mask = Image.new("L", (side, side), 0)
    inset = max(1, side // 32)
    ImageDraw.Draw(mask).rectangle((inset, inset, side - inset, side - inset), fill=255)
    canvas.paste(face, at, mask.filter(ImageFilter.GaussianBlur(inset / 2)))


def _background(rng: np.random.Generator) -> Image.Image:
    """A busy background without faces: colour noise at five scales (features of 8 px
    to the whole photo), with a few sharp-edged blocks, like furniture and walls."""
    acc = np.zeros((H // 4, W // 4, 3), np.float32)
    for k, (w, h) in enumerate(((4, 3), (16, 12), (64, 48), (256, 192), (512, 384))):
        small = rng.normal(0, 1, (h, w, 3)).astype(np.float32)
        layer = [
            Image.fromarray(small[..., c], "F").resize((W // 4, H // 4), Image.Resampling.BICUBIC)
            for c in range(3)
        ]
        acc += np.stack([np.asarray(x) for x in layer], -1) * (0.6**k)
    acc = 0.5 * acc + 0.5 * acc.mean(axis=2, keepdims=True)  # muted colours
    img = np.clip(128 + 45 * acc, 0, 255).astype(np.uint8)
    canvas = Image.fromarray(img).resize((W, H), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(canvas)
    for _ in range(6):
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        w, h = int(rng.integers(100, 1500)), int(rng.integers(100, 1500))
        draw.rectangle((x, y, x + w, y + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return canvas


def build(folder: Path, photos: int, seed: int = 0) -> list[dict]:
    """Write the album; returns the truth per photo (name, face box, size, blur, dark)."""
    rng = np.random.default_rng(seed)
    people = choose_people(rng, 40)
    names = list(people)
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for k in range(photos):
        canvas = _background(rng)
        n = int(rng.integers(3, 11))
        who = rng.choice(len(names), n, replace=False)
        cells = rng.choice(12, n, replace=False)  # a 4 x 3 grid of 1000 px cells
        faces = []
        for p, cell in zip(who, cells, strict=True):
            name = names[int(p)]
            lo, hi = BINS[int(rng.integers(len(BINS)))]
            size = int(rng.integers(lo, hi))
            side = round(size / FACE_SHARE)
            x = (int(cell) % 4) * 1000 + int(rng.integers(0, 1000 - side))
            y = (int(cell) // 4) * 1000 + int(rng.integers(0, 1000 - side))
            kind = rng.random()
            blur = float(rng.uniform(0.015, 0.04) * side) if kind < 0.2 else 0.0
            dark = float(rng.uniform(0.3, 0.55)) if 0.2 <= kind < 0.4 else 0.0
            src = people[name][int(rng.integers(len(people[name])))]
            _paste_face(canvas, src, size, (x, y), blur, dark)
            fx1, fy1, fx2, fy2 = FACE_IN_PASTE
            box = [x + fx1 * side, y + fy1 * side, x + fx2 * side, y + fy2 * side]
            faces.append(
                {"name": name, "box": box, "size": size, "blur": blur > 0, "dark": dark > 0}
            )
        rel = f"group_{k:03d}.jpg"
        canvas.save(folder / rel, quality=90)
        truth.append({"path": rel, "faces": faces})
    return truth


def album(photos: int, rebuild: bool) -> tuple[Path, list[dict]]:
    """The album folder and its truth, built when missing."""
    cache = RESULTS / f"small_faces_album_{photos}"
    truth_path = cache / "truth.json"
    if not rebuild and truth_path.exists():
        return cache / "photos", json.loads(truth_path.read_text())
    truth = build(cache / "photos", photos)
    truth_path.write_text(json.dumps(truth))
    return cache / "photos", truth


def match(truth: list[dict], found: dict[str, list[tuple[int, tuple]]]) -> dict[int, int]:
    """Stored face id -> index of the pasted face it is (its centre in the face box)."""
    out: dict[int, int] = {}
    index = 0
    for photo in truth:
        used: set[int] = set()
        for fid, box in found.get(photo["path"], []):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            for k, t in enumerate(photo["faces"]):
                x1, y1, x2, y2 = t["box"]
                if k not in used and x1 <= cx <= x2 and y1 <= cy <= y2:
                    used.add(k)
                    out[fid] = index + k
                    break
        index += len(photo["faces"])
    return out


def bin_of(size: float) -> str:
    for lo, hi in BINS:
        if lo <= size < hi:
            return BIN_NAMES[(lo, hi)]
    return "other"


BIN_NAMES = {(40, 60): "40-60", (60, 80): "60-80", (80, 120): "80-120", (120, 161): "120+"}


def plans() -> dict[str, SecondLook | None]:
    """The detection plans compared: today's (no second look) and the second look at
    a few proposal thresholds."""
    return {
        "before": None,
        "after": DEFAULT,
        "look_0.3": SecondLook(threshold=0.3),
        "look_0.8": SecondLook(threshold=0.8),
    }


def scan(folder: Path, tmp: Path, name: str, look: SecondLook | None, loaded) -> dict:
    """Scan the album with one plan into a fresh library: faces, vectors, seconds."""
    analyzer = pipeline.Analyzer.from_weights(loaded, "cpu")
    analyzer.detector.second_look = look
    lib = Library(tmp / f"{name}.sqlite", root=folder)
    model_versions.register_base(lib, loaded)
    report = pipeline.scan(lib, folder, analyzer)
    faces = lib.faces()
    ids, vectors = lib.embeddings()
    lib.close()
    pos = {int(f): i for i, f in enumerate(ids)}
    return {
        "seconds": report.seconds,
        "photos": report.photos,
        "faces": faces,
        "vectors": vectors[[pos[f.id] for f in faces]],
        "threshold": analyzer.threshold,
    }


def score(run: dict, truth: list[dict], before: set[int] | None, cuts: list[int]) -> dict:
    """Recall by size, other detections, embedding quality by size, clustering."""
    sizes = [t["size"] for p in truth for t in p["faces"]]
    names = [t["name"] for p in truth for t in p["faces"]]
    found: dict[str, list[tuple[int, tuple]]] = {}
    for f in run["faces"]:
        found.setdefault(f.photo_path, []).append((f.id, f.box))
    matched = match(truth, found)
    got = set(matched.values())
    recall = {}
    for key in BIN_NAMES.values():
        idx = [i for i, s in enumerate(sizes) if bin_of(s) == key]
        recall[key] = round(sum(i in got for i in idx) / len(idx), 4)
    rows = [i for i, f in enumerate(run["faces"]) if f.id in matched]
    x = run["vectors"][rows]
    who = np.array([names[matched[run["faces"][i].id]] for i in rows])
    box = np.array([(f.box[2] - f.box[0] + f.box[3] - f.box[1]) / 2 for f in run["faces"]])
    # embedding quality by the detected box size: is the nearest other face the same person?
    d = sq_dists(x, x)
    np.fill_diagonal(d, np.inf)
    nn_ok = who[d.argmin(axis=1)] == who
    nn = {}
    for lo, hi in ((0, 30), (30, 40), (40, 50), (50, 60), (60, 80), (80, 10_000)):
        sel = (box[rows] >= lo) & (box[rows] < hi)
        nn[f"{lo}-{hi}"] = [
            round(float(nn_ok[sel].mean()), 3) if sel.any() else None,
            int(sel.sum()),
        ]
    photo = np.array([f.photo_id for f in run["faces"]], np.int64)
    truth_idx = np.array([matched[run["faces"][i].id] for i in rows])
    clusters = {}
    for cut in cuts:
        use = box >= cut
        labels = np.full(len(run["faces"]), -1, np.int64)
        if use.sum() > 4:
            labels[use] = cluster_vectors(
                run["vectors"][use], photo[use], threshold=run["threshold"]
            ).labels
        lab = labels[rows]
        row = {"all": cluster_scores(who, lab).bcubed_f}
        if before is not None:
            old = np.isin(truth_idx, sorted(before))
            row["faces_of_before"] = cluster_scores(who[old], lab[old]).bcubed_f
        row["unknown"] = round(float((lab < 0).mean()), 4)
        clusters[str(cut)] = {k: round(v, 4) for k, v in row.items()}
    return {
        "recall": recall,
        "found": len(got),
        "album_faces": len(sizes),
        "other_detections": len(run["faces"]) - len(matched),
        "photos_per_s": round(run["photos"] / run["seconds"], 3),
        "faces_per_s": round(len(run["faces"]) / run["seconds"], 3),
        "nearest_same_person_by_box": nn,
        "bcubed_f_by_cut": clusters,
        "_found": got,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--plans", default=",".join(plans()), help="comma-separated plan names")
    ap.add_argument("--cuts", default="0,30,40,50", help="clustering cuts (box px) to score")
    ap.add_argument("--rebuild", action="store_true", help="write the album again")
    args = ap.parse_args()
    if not (LFW / "lfw-deepfunneled").is_dir():
        sys.exit(f"LFW not found at {LFW}")
    folder, truth = album(args.photos, args.rebuild)
    loaded = resolve_weights()
    cuts = [int(c) for c in args.cuts.split(",")]
    chosen = {k: v for k, v in plans().items() if k in args.plans.split(",")}
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before_found = None
        for name, look in chosen.items():
            t = time.perf_counter()
            result = score(scan(folder, Path(tmp), name, look, loaded), truth, before_found, cuts)
            if name == "before":
                before_found = result["_found"]
            result.pop("_found")
            result["wall_s"] = round(time.perf_counter() - t, 1)
            out[name] = result
            print(f"{name}: {result['found']}/{result['album_faces']} found", flush=True)
    n = sum(len(p["faces"]) for p in truth)
    print(f"\n{args.photos} photos of 4000x3000, {n} faces; the machine is shared: compare rows")
    print(
        f"{'plan':<10}" + "".join(f"{b:>9}" for b in BIN_NAMES.values()) + f"{'other':>7}"
        f"{'photos/s':>10}{'faces/s':>9}"
    )
    for name, r in out.items():
        print(
            f"{name:<10}"
            + "".join(f"{r['recall'][b]:>9.3f}" for b in BIN_NAMES.values())
            + f"{r['other_detections']:>7}{r['photos_per_s']:>10.3f}{r['faces_per_s']:>9.2f}"
        )
    print(
        "\nBCubed F (all found album faces | the faces the old plan finds), faces under"
        " the cut (box px) left out of clustering"
    )
    for name, r in out.items():
        cells = [
            f"cut {c}: {v['all']:.3f} | {v.get('faces_of_before', float('nan')):.3f}"
            for c, v in r["bcubed_f_by_cut"].items()
        ]
        print(f"{name:<10}" + "   ".join(cells))
    print("\nnearest other face is the same person, by detected box size (share, faces)")
    for name, r in out.items():
        print(
            f"{name:<10}"
            + "  ".join(f"{k}: {v[0]} ({v[1]})" for k, v in r["nearest_same_person_by_box"].items())
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "small_faces.json").write_text(
        json.dumps({"photos": args.photos, "plans": out}, indent=1)
    )


if __name__ == "__main__":
    main()
