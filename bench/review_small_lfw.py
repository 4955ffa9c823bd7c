"""Review suggestions for small faces on LFW: precision and recall of "likely" and
"unsure", with the plain distances and with the faces measured at their own
resolution (faceapp.engine.small_match).

The people of bench/review_lfw.py (200 with 2-6 images, 300 strangers seen once):
each person's first images (up to 3, never all) stay as LFW has them (250 px, face
~110 px), the others and every stranger are pasted at 22-27 px in the middle of a
300 px canvas (faces of 14-19 px, under the 20 px below which faces are not
grouped). The library is scanned once by the app's pipeline and cached under
bench/results/review_small_lfw/. Each scenario of bench/review_lfw.py names a share
of the people from their large faces; only the small faces are scored:

* precision of a label: small-face suggestions with that label whose person is right;
* recall: right suggestions with that label / small faces of named people.

``--fit`` fits the curve of measured distances (small_match.SMALL_MID_RATIO /
SMALL_SCALE_RATIO) on the scenarios of seed 0 and scores the others with it.

    python bench/review_small_lfw.py [--fit] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from review_lfw import (  # noqa: E402
    LFW,
    RESULTS,
    SCENARIOS,
    choose,
    fresh_copy,
    scenario,
    score,
    subjects,
)

from faceapp.engine import pipeline, review, small_match  # noqa: E402
from faceapp.engine.library import Library  # noqa: E402

CACHE = RESULTS / "review_small_lfw"
PASTE_SRC = (50, 45, 200, 195)  # as bench/album_effort.py pastes a face
CANVAS, SMALL = 300, (22, 28)
BIG_PER_PERSON = 3


def build(folder: Path) -> None:
    rng = np.random.default_rng(0)
    seen: dict[str, int] = {}
    chosen = choose(np.random.default_rng(0))
    count = {}
    for rel in chosen:
        count[rel.split("/")[0]] = count.get(rel.split("/")[0], 0) + 1
    for rel in chosen:
        name = rel.split("/")[0]
        k = seen[name] = seen.get(name, 0) + 1
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if k <= min(BIG_PER_PERSON, count[name] - 1):
            shutil.copy(LFW / "lfw-deepfunneled" / rel, dest)
            continue
        s = int(rng.integers(*SMALL))
        shade = tuple(int(v) for v in rng.integers(60, 200, 3))
        canvas = Image.new("RGB", (CANVAS, CANVAS), shade)
        with Image.open(LFW / "lfw-deepfunneled" / rel) as src:
            face = src.convert("RGB").crop(PASTE_SRC).resize((s, s))
        canvas.paste(face, ((CANVAS - s) // 2, (CANVAS - s) // 2))
        canvas.save(dest, quality=92)


def scanned() -> Path:
    lib_path = CACHE / "library.sqlite"
    if lib_path.exists():
        return lib_path
    shutil.rmtree(CACHE, ignore_errors=True)
    build(CACHE / "photos")
    lib = Library(lib_path, root=CACHE / "photos")
    analyzer = pipeline.analyzer_for_library(lib, device="cpu")
    t = time.perf_counter()
    report = pipeline.scan(lib, CACHE / "photos", analyzer)
    print(
        f"scanned {report.photos} photos, {report.faces} faces in {time.perf_counter() - t:.0f} s"
    )
    lib.close()
    return lib_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2, help="evaluation seeds (1..N)")
    ap.add_argument("--fit", action="store_true", help="fit the measured curve on seed 0 first")
    args = ap.parse_args()
    if not (LFW / "lfw-deepfunneled").is_dir():
        sys.exit(f"LFW not found at {LFW}")
    src = scanned()
    base = Library(src)
    base.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    truth = subjects(base)
    small = {
        r[0]
        for r in base.conn.execute(
            "SELECT id FROM faces WHERE (x2 - x1 + y2 - y1) / 2 < ?", (small_match.SMALL_PX,)
        )
    }
    embed = pipeline.analyzer_for_library(base, device="cpu").embedder.embed
    threshold = base.active_threshold()
    base.close()
    big_truth = {f: n for f, n in truth.items() if f not in small}
    small_truth = {f: n for f, n in truth.items() if f in small}
    out: dict = {"scenarios": []}
    if args.fit:
        d_all, ok_all = [], []
        for share, confirm in SCENARIOS:
            work = fresh_copy(src, 0, "review_small_lfw")
            lib, _named = scenario(work, big_truth, share, confirm, 0)
            small_match.update(lib, embed, lib.active_model().id)
            items = [s for s in review.review(lib) if s.face_id in small]
            d_all += [s.distance for s in items]
            ok_all += [small_truth.get(s.face_id) == s.person_name for s in items]
            lib.close()
        mid, scale = review.fit_logistic(np.array(d_all), np.array(ok_all))
        small_match.SMALL_MID_RATIO = round(mid / threshold, 3)
        small_match.SMALL_SCALE_RATIO = round(scale / threshold, 3)
        out["fit"] = {
            "mid_ratio": small_match.SMALL_MID_RATIO,
            "scale_ratio": small_match.SMALL_SCALE_RATIO,
            "examples": len(d_all),
        }
        print(
            f"fit on seed 0 ({len(d_all)} suggestions): SMALL_MID_RATIO ="
            f" {mid / threshold:.3f}, SMALL_SCALE_RATIO = {scale / threshold:.3f}"
        )
    pasted = sum(1 for p in (CACHE / "photos").rglob("*.jpg") if Image.open(p).size[0] == CANVAS)
    print(f"{pasted} small pasted faces, {len(small_truth)} found under {small_match.SMALL_PX} px")
    print(f"{'named, confirmed':<18}{'distances':<12}{'likely P/R':>16}{'unsure P/R':>16}")
    out.update(small_pasted=pasted, small_found=len(small_truth))
    for share, confirm in SCENARIOS:
        for seed in range(1, args.seeds + 1):
            work = fresh_copy(src, seed, "review_small_lfw")
            lib, named = scenario(work, big_truth, share, confirm, seed)
            for kind in ("plain", "measured"):
                if kind == "measured":
                    t = time.perf_counter()
                    pairs = small_match.update(lib, embed, lib.active_model().id)
                    took = time.perf_counter() - t
                items = [s for s in review.review(lib) if s.face_id in small]
                s = score(items, small_truth, lib, named)
                s.update(share=share, confirm=confirm, seed=seed, distances=kind)
                if kind == "measured":
                    s.update(pairs=pairs, seconds=round(took, 1))
                out["scenarios"].append(s)
                cells = "".join(
                    f"{s[k]['precision']:>9.3f}/{s[k]['recall']:.3f}" for k in ("likely", "unsure")
                )
                print(f"{f'{share:.0%}, {confirm}':<18}{kind:<12}{cells}")
            lib.close()
    for kind in ("plain", "measured"):
        rows = [s for s in out["scenarios"] if s["distances"] == kind]
        mean = {
            k: {
                m: round(float(np.mean([r[k][m] for r in rows])), 4)
                for m in ("precision", "recall")
            }
            for k in ("likely", "unsure", "all")
        }
        out[f"mean_{kind}"] = mean
        print(
            f"{'mean':<18}{kind:<12}"
            + "".join(
                f"{mean[k]['precision']:>9.3f}/{mean[k]['recall']:.3f}"
                for k in ("likely", "unsure")
            )
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "review_small_lfw.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
