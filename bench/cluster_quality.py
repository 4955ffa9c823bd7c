"""Clustering quality on LFW: the app's clustering against plain HDBSCAN.

Sets: (a) the people with at least 10 photos (158 people, 4,324 images), (b) all
13,233 images. Scores (pairwise P/R/F1, BCubed P/R/F, adjusted Rand index, clusters,
Unknown fraction, time) are computed on the labelled face of each image (the face
nearest the centre); every detected face is clustered, with the same-photo
constraint on. Noise faces count as singletons.

    python bench/cluster_quality.py --library LIB  # LIB: `faceapp scan .../lfw-deepfunneled`
    python bench/cluster_quality.py                # cache of bench/lfw_accuracy.py --all
    python bench/cluster_quality.py --sweep        # + one-at-a-time parameter sweeps
    python bench/cluster_quality.py --suggest      # + suggestion precision study

Writes bench/results/cluster_quality.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster_data import RESULTS, Faces, load, people_with_at_least
from faceapp.engine.cluster_metrics import cluster_scores
from faceapp.engine.clustering import ClusterParams, cluster_vectors
from faceapp.engine.face_state import FaceState
from faceapp.engine.person_distances import nearest_people

PLAIN = ClusterParams(
    min_cluster_size=5, min_samples=1, pca_dims=64, trim_ratio=0.0, merge_ratio=0.0,
    cohesion_ratio=0.0, attach_ratio=0.0, algorithm="exact",
)  # fmt: skip

SWEEPS: dict[str, list] = {
    "min_cluster_size": [2, 3, 4, 5, 6, 8],
    "min_samples": [1, 2, 3, 5],
    "pca_dims": [0, 128, 64, 32, 16],
    "selection_method": ["eom", "leaf"],
    "selection_epsilon": [0.0, 0.3, 0.6],
    "trim_ratio": [0.0, 0.6, 0.65, 0.7, 0.75, 0.8],
    "merge_ratio": [0.0, 0.3, 0.4, 0.5],
    "cohesion_ratio": [0.0, 0.35, 0.4, 0.45],
    "attach_ratio": [0.0, 0.4, 0.5, 0.6, 0.7],
    "algorithm": ["exact", "knn"],
}


def run(faces: Faces, params: ClusterParams, *, constraints: bool = True) -> dict:
    groups = faces.photo if constraints else np.arange(len(faces))
    t = time.perf_counter()
    res = cluster_vectors(faces.vectors, groups, params, threshold=faces.threshold)
    seconds = time.perf_counter() - t
    s = cluster_scores(faces.person[faces.subject], res.labels[faces.subject])
    row = s.as_dict() | {"seconds": round(seconds, 2), "all_faces": len(faces)}
    row["same_photo_pairs"] = _same_photo_pairs(faces.photo, res.labels)
    return row


def _same_photo_pairs(photo: np.ndarray, labels: np.ndarray) -> int:
    valid = labels >= 0
    pairs = np.stack([photo[valid], labels[valid]], axis=1)
    return int(len(pairs) - len(np.unique(pairs, axis=0)))


COLS = [
    ("faces", "faces", "{:>6}"),
    ("clusters", "clust", "{:>5}"),
    ("unknown_fraction", "unk%", "{:>5.1%}"),
    ("pairwise_precision", "pw P", "{:.4f}"),
    ("pairwise_recall", "pw R", "{:.4f}"),
    ("pairwise_f1", "pw F1", "{:.4f}"),
    ("bcubed_precision", "B3 P", "{:.4f}"),
    ("bcubed_recall", "B3 R", "{:.4f}"),
    ("bcubed_f", "B3 F", "{:.4f}"),
    ("ari", "ARI", "{:.4f}"),
    ("seconds", "sec", "{:>6.2f}"),
]


def print_rows(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{title}")
    print(f"{'':<34}" + " ".join(f"{h:>6}" for _, h, _ in COLS))
    for label, r in rows:
        print(f"{label:<34}" + " ".join(f"{fmt.format(r[k]):>6}" for k, _, fmt in COLS))


def _logistic(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Fit P(y) = 1 / (1 + exp((x - mid) / scale)) by Newton's method: (mid, scale)."""
    design = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -50, 50)))
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
        w -= np.linalg.solve(hess, design.T @ (p - y))
    return float(-w[0] / w[1]), float(-1 / w[1])


def suggestion_study(faces: Faces, *, seed: int = 0) -> list[dict]:
    """How good are "Is this X?" proposals? Simulates a user who named some of the
    people (a share of them, confirming a share of each one's faces) and asks, as
    the app does, for the nearest allowed named person of every other face: precision
    and coverage (correct proposals / faces of named people) at distance cut-offs
    given as fractions of the model threshold, and a logistic fit of P(correct | d)."""
    from faceapp.engine import review

    thr = faces.threshold
    subj = np.flatnonzero(faces.subject)
    person = faces.person[subj]
    out = []
    for named_share, confirm in ((1.0, 0.3), (0.1, 0.3), (0.02, 0.1)):
        rng = np.random.default_rng(seed)
        ids = np.unique(person)
        named = set(ids[rng.random(len(ids)) < named_share].tolist())
        confirmed = np.zeros(len(subj), bool)
        for p in named:
            rows = np.flatnonzero(person == p)
            if len(rows) >= 2:
                k = min(max(1, round(confirm * len(rows))), len(rows) - 1)
                confirmed[rng.choice(rows, k, replace=False)] = True
        state = FaceState(
            ids=np.arange(len(subj)),
            vectors=faces.vectors[subj],
            photo=faces.photo[subj],
            person=np.where(confirmed, person + 1, 0),
            cluster=np.zeros(len(subj), np.int64),
        )
        t = time.perf_counter()
        best, dist = nearest_people(state, np.zeros((0, 2), np.int64))
        seconds = time.perf_counter() - t
        truth = person[~confirmed] + 1
        known = np.isin(truth, np.unique(state.person[confirmed]))
        correct = best == truth
        cutoffs = []
        for ratio in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0):
            prop = dist < ratio * thr
            hits = prop & correct
            cutoffs.append(
                {
                    "ratio": ratio,
                    "proposed": int(prop.sum()),
                    "precision": round(float(hits.sum() / max(prop.sum(), 1)), 4),
                    "coverage": round(float(hits.sum() / max(known.sum(), 1)), 4),
                }
            )
        near = dist < thr
        mid, scale = _logistic(dist[near].astype(float), correct[near].astype(float))
        chosen = dist < review.REVIEW_RATIO * thr  # what the review queue shows
        conf = review.lfw_calibration(thr).confidence(dist[chosen])
        likely = conf >= review.LIKELY
        out.append(
            {
                "people_named": round(len(named) / len(ids), 3),
                "faces_confirmed_per_person": confirm,
                "unconfirmed_faces": int((~confirmed).sum()),
                "of_named_people": int(known.sum()),
                "seconds": round(seconds, 3),
                "cutoffs": cutoffs,
                "logistic_fit": {
                    "mid_ratio": round(mid / thr, 3),
                    "scale_ratio": round(scale / thr, 3),
                },
                "at_defaults": {
                    "proposed": int(chosen.sum()),
                    "precision": round(float(correct[chosen].mean()) if chosen.any() else 0.0, 4),
                    "mean_confidence": round(float(conf.mean()) if len(conf) else 0.0, 4),
                    "likely": int(likely.sum()),
                    "likely_precision": round(
                        float(correct[chosen][likely].mean()) if likely.any() else 0.0, 4
                    ),
                },
            }
        )
    return out


def print_study(title: str, study: list[dict]) -> None:
    print(f"\nsuggestions, {title}: precision / coverage at d < ratio * threshold")
    ratios = [c["ratio"] for c in study[0]["cutoffs"]]
    print(f"{'named, confirmed':<22}" + "".join(f"{r:>14}" for r in ratios) + "   fit mid/scale")
    for s in study:
        label = f"{s['people_named']:.0%} of people, {s['faces_confirmed_per_person']:.0%}"
        cells = "".join(f"{c['precision']:>7.3f}/{c['coverage']:.3f}" for c in s["cutoffs"])
        fit = s["logistic_fit"]
        print(f"{label:<22}{cells}   {fit['mid_ratio']:.2f}/{fit['scale_ratio']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", type=Path, help="a library scanned from lfw-deepfunneled")
    ap.add_argument("--cache", type=Path, help="embedding cache (.npz) instead of a library")
    ap.add_argument("--sweep", action="store_true", help="one-at-a-time parameter sweeps")
    ap.add_argument("--suggest", action="store_true", help="suggestion precision study")
    ap.add_argument("--sets", default="a,b", help="a (>= 10 photos), b (all)")
    args = ap.parse_args()

    faces = load(args.library, args.cache)
    print(f"embeddings: {faces.source}; threshold {faces.threshold:.4f}")
    sets = {
        "a": ("(a) people with >= 10 photos", faces.restrict(people_with_at_least(faces, 10))),
        "b": ("(b) all images", faces),
    }
    defaults = ClusterParams()
    out: dict = {
        "source": faces.source,
        "threshold": faces.threshold,
        "defaults": dataclasses.asdict(defaults),
        "plain": dataclasses.asdict(PLAIN),
        "sets": {},
    }
    for key in args.sets.split(","):
        title, sub = sets[key]
        rows = [
            ("plain HDBSCAN (PCA 64, 5, 1)", run(sub, PLAIN, constraints=False)),
            ("app defaults, constraints on", run(sub, defaults)),
            ("app, no groups of 2-3", run(sub, dataclasses.replace(defaults, pair_ratio=0.0))),
        ]
        print_rows(
            f"{title}: {int(sub.subject.sum())} labelled faces of {len(sub)}, "
            f"{len(np.unique(sub.person[sub.subject]))} people",
            rows,
        )
        entry = {"title": title, "rows": {label: r for label, r in rows}}
        if args.sweep:
            sweep_rows = []
            for name, values in SWEEPS.items():
                for v in values:
                    p = dataclasses.replace(defaults, **{name: v})
                    sweep_rows.append((f"{name}={v}", run(sub, p)))
            print_rows(f"{title}: one-at-a-time sweeps around the defaults", sweep_rows)
            entry["sweep"] = {label: r for label, r in sweep_rows}
        out["sets"][key] = entry
    if args.suggest:
        for key in args.sets.split(","):
            title, sub = sets[key]
            study = suggestion_study(sub)
            out["sets"][key]["suggestions"] = study
            print_study(title, study)
    RESULTS.mkdir(exist_ok=True)
    name = "cluster_quality.json" if not args.sweep else "cluster_quality_sweep.json"
    (RESULTS / name).write_text(json.dumps(out, indent=1))
    print(f"\nwrote {RESULTS / name}")


if __name__ == "__main__":
    main()
