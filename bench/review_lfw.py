"""Review suggestions on LFW: precision and recall of "likely" and of "unsure".

A library of LFW deep-funneled images (200 people with 2+ images, up to 6 each, and
300 people seen once as strangers) is scanned once by the app's pipeline and cached
under bench/results/review_lfw/. Each scenario is a user who named a share of the
people (confirming 1-3 faces of each) through the app's operations; the review
queue (faceapp.engine.review) is then scored against the truth:

* precision of a label: suggestions with that label whose person is right;
* recall of a label: right suggestions with that label / unconfirmed faces whose
  person is named (what the queue could have found).

The subject of an image is the face nearest its centre (the LFW protocol); other
detected faces are background people, never named, and count as wrong when proposed.

``--fit`` fits the LFW confidence curve (review.LFW_MID_RATIO / LFW_SCALE_RATIO) on
the scenarios of seed 0 and evaluates on the others, so the shipped constants are
not scored on the data they were fitted on.

    python bench/review_lfw.py [--fit]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceapp.engine import people, pipeline, review  # noqa: E402
from faceapp.engine.face_state import load_state  # noqa: E402
from faceapp.engine.library import Library  # noqa: E402
from faceapp.engine.person_distances import library_nearest_people  # noqa: E402

LFW = Path(os.environ.get("FACEAPP_LFW", ROOT.parent / "shared" / "data" / "lfw"))
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / "review_lfw"
PEOPLE, PER_PERSON, STRANGERS = 200, 6, 300
# (share of people named, faces confirmed per named person)
SCENARIOS = ((0.3, 1), (0.3, 3), (0.7, 2))


def choose(rng: np.random.Generator) -> list[str]:
    folder = LFW / "lfw-deepfunneled"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    imgs = {n: sorted(f.name for f in (folder / n).glob("*.jpg")) for n in names}
    many = [n for n in names if len(imgs[n]) >= 2]
    chosen = rng.choice(many, PEOPLE, replace=False).tolist()
    rest = [n for n in names if n not in set(chosen)]
    out = [f"{n}/{f}" for n in chosen for f in imgs[n][:PER_PERSON]]
    out += [f"{n}/{imgs[n][0]}" for n in rng.choice(rest, STRANGERS, replace=False).tolist()]
    return sorted(out)


def scanned() -> Path:
    lib_path = CACHE / "library.sqlite"
    if lib_path.exists():
        return lib_path
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    root = LFW / "lfw-deepfunneled"
    lib = Library(lib_path, root=root)
    analyzer = pipeline.analyzer_for_library(lib, device="cpu")
    t = time.perf_counter()
    report = pipeline.scan(lib, root, analyzer, only=set(choose(np.random.default_rng(0))))
    print(
        f"scanned {report.photos} images, {report.faces} faces in {time.perf_counter() - t:.0f} s"
    )
    lib.close()
    return lib_path


def subjects(lib: Library) -> dict[int, str]:
    """face id -> LFW name for the face nearest each image's centre."""
    best: dict[int, tuple[float, int, str]] = {}
    for f in lib.faces():
        w = lib.conn.execute("SELECT width, height FROM photos WHERE id = ?", (f.photo_id,))
        width, height = w.fetchone()
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        d = (cx - width / 2) ** 2 + (cy - height / 2) ** 2
        if f.photo_id not in best or d < best[f.photo_id][0]:
            best[f.photo_id] = (d, f.id, f.photo_path.split("/")[0])
    return {fid: name for _, fid, name in best.values()}


def scenario(work: Path, truth: dict[int, str], share: float, confirm: int, seed: int):
    """Name people as a user would; returns (library, named people) for scoring."""
    lib = Library(work)
    rng = np.random.default_rng(seed)
    by_name: dict[str, list[int]] = {}
    for fid, name in truth.items():
        by_name.setdefault(name, []).append(fid)
    recurring = sorted(n for n, f in by_name.items() if len(f) >= 2)
    named = [n for n in recurring if rng.random() < share]
    for n in named:
        faces = sorted(by_name[n])
        k = min(confirm, len(faces) - 1)
        people.create_person(lib, n, rng.choice(faces, k, replace=False).tolist())
    return lib, set(named)


def score(items: list[review.ReviewItem], truth: dict[int, str], lib: Library, named: set[str]):
    confirmed = {r[0] for r in lib.conn.execute("SELECT id FROM faces WHERE person_id IS NOT NULL")}
    findable = sum(1 for f, n in truth.items() if n in named and f not in confirmed)
    out = {"findable": findable}
    for label in ("likely", "unsure", "all"):
        chosen = [s for s in items if label == "all" or s.label == label]
        right = sum(truth.get(s.face_id) == s.person_name for s in chosen)
        out[label] = {
            "proposed": len(chosen),
            "right": right,
            "precision": round(right / max(len(chosen), 1), 4),
            "recall": round(right / max(findable, 1), 4),
        }
    return out


def fresh_copy(src: Path, seed: int, name: str = "review_lfw") -> Path:
    """A working copy of the scanned library ``src`` for one seed's scenario."""
    work = RESULTS / f"{name}_work{seed}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(work) + suffix).unlink(missing_ok=True)
    shutil.copy(src, work)
    return work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit", action="store_true", help="fit the LFW curve on seed 0 first")
    ap.add_argument("--seeds", type=int, default=2, help="evaluation seeds (1..N)")
    args = ap.parse_args()
    src = scanned()
    base = Library(src)
    base.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    truth = subjects(base)
    threshold = base.active_threshold()
    base.close()
    out: dict = {"threshold": threshold, "faces": len(truth), "scenarios": []}
    if args.fit:
        d_all, ok_all = [], []
        for share, confirm in SCENARIOS:
            lib, named = scenario(fresh_copy(src, 0), truth, share, confirm, seed=0)
            state = load_state(lib)
            person, dist = library_nearest_people(lib, state)
            rows = np.flatnonzero(state.person == 0)
            names = dict(lib.conn.execute("SELECT id, name FROM people").fetchall())
            near = np.flatnonzero((person > 0) & (dist < threshold))
            d_all.append(dist[near])
            ok_all.append(
                np.array(
                    [truth.get(int(state.ids[rows[i]])) == names[int(person[i])] for i in near]
                )
            )
            lib.close()
        mid, scale = review.fit_logistic(np.concatenate(d_all), np.concatenate(ok_all))
        out["fit"] = {
            "mid_ratio": round(mid / threshold, 3),
            "scale_ratio": round(scale / threshold, 3),
        }
        print(
            f"LFW fit (seed 0): LFW_MID_RATIO = {mid / threshold:.3f},"
            f" LFW_SCALE_RATIO = {scale / threshold:.3f}"
        )
        review.LFW_MID_RATIO, review.LFW_SCALE_RATIO = mid / threshold, scale / threshold
    print(f"\n{len(truth)} labelled faces, threshold {threshold:.4f}")
    header = f"{'named, confirmed':<18}{'calibration':<12}{'likely P/R':>16}{'unsure P/R':>16}"
    print(header + f"{'all P/R':>16}")
    for share, confirm in SCENARIOS:
        for seed in range(1, args.seeds + 1):
            lib, named = scenario(fresh_copy(src, seed), truth, share, confirm, seed)
            cal = review.calibrate(lib)
            curves = {"lfw": review.lfw_calibration(threshold)}  # the shipped curve
            if cal.source == "library":  # and the user's own, when there are enough answers
                curves["library"] = cal
            for source, curve in curves.items():
                items = review.review(lib, calibration=curve)
                s = score(items, truth, lib, named)
                s.update(share=share, confirm=confirm, seed=seed, calibration=source)
                out["scenarios"].append(s)
                label = f"{share:.0%}, {confirm}"
                cells = "".join(
                    f"{s[k]['precision']:>9.3f}/{s[k]['recall']:.3f}"
                    for k in ("likely", "unsure", "all")
                )
                print(f"{label:<18}{source:<12}{cells}")
            lib.close()
    for source in ("lfw", "library"):
        rows = [s for s in out["scenarios"] if s["calibration"] == source]
        if rows:
            mean = {
                k: {
                    m: round(float(np.mean([r[k][m] for r in rows])), 4)
                    for m in ("precision", "recall")
                }
                for k in ("likely", "unsure", "all")
            }
            out[f"mean_{source}"] = mean
            print(
                f"{'mean':<18}{source:<12}"
                + "".join(
                    f"{mean[k]['precision']:>9.3f}/{mean[k]['recall']:.3f}"
                    for k in ("likely", "unsure", "all")
                )
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "review_lfw.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
