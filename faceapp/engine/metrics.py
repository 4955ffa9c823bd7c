"""Verification metrics as the LFW protocol and the FaceNet paper define them.

Distances are squared L2 between unit embeddings (smaller = more alike). The
10-fold protocol picks the threshold on nine folds and tests it on the tenth;
VAL/FAR follow FaceNet section 4.1: VAL(d) = |true accepts| / |same pairs|,
FAR(d) = |false accepts| / |different pairs|.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Pair:
    a: str  # relative path "Name/Name_0001.jpg"
    b: str
    same: bool


def read_pairs(pairs_file: Path) -> list[Pair]:
    """Parse an LFW pairs file (pairs.txt, pairsDevTrain.txt, pairsDevTest.txt)."""
    pairs: list[Pair] = []
    lines = Path(pairs_file).read_text().split("\n")
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 3:
            name, i, j = parts
            pairs.append(Pair(_lfw_path(name, i), _lfw_path(name, j), True))
        elif len(parts) == 4:
            n1, i, n2, j = parts
            pairs.append(Pair(_lfw_path(n1, i), _lfw_path(n2, j), False))
    return pairs


def _lfw_path(name: str, index: str) -> str:
    return f"{name}/{name}_{int(index):04d}.jpg"


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((distances < threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the best accuracy, midway between neighbouring distances."""
    order = np.sort(np.unique(distances))
    candidates = np.concatenate(
        [[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]]
    )
    same = same.astype(bool)
    # accuracy for every candidate at once: pairs below threshold count as "same"
    d_sorted = np.sort(distances[same])
    n_sorted = np.sort(distances[~same])
    true_accepts = np.searchsorted(d_sorted, candidates, side="left")
    false_accepts = np.searchsorted(n_sorted, candidates, side="left")
    correct = true_accepts + (len(n_sorted) - false_accepts)
    return float(candidates[int(np.argmax(correct))])


def folds(n: int, k: int = 10) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Contiguous folds, as pairs.txt is laid out (fold i = lines i*600 .. i*600+599)."""
    bounds = np.linspace(0, n, k + 1).astype(int)
    index = np.arange(n)
    for i in range(k):
        test = index[bounds[i] : bounds[i + 1]]
        yield np.setdiff1d(index, test), test


def val_far_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    same = same.astype(bool)
    accept = distances < threshold
    val = float(accept[same].mean()) if same.any() else 0.0
    far = float(accept[~same].mean()) if (~same).any() else 0.0
    return val, far


def threshold_for_far(distances: np.ndarray, same: np.ndarray, far_target: float) -> float:
    """The largest threshold whose false-accept rate does not exceed ``far_target``."""
    negatives = np.sort(distances[~same.astype(bool)])
    allowed = int(np.floor(far_target * len(negatives)))
    if allowed >= len(negatives):
        return float(negatives[-1] + 1e-6)
    return float(negatives[allowed])  # accept strictly below the (allowed+1)-th negative


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (probability a same pair is closer than a different one)."""
    same = same.astype(bool)
    pos, neg = distances[same], distances[~same]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = np.empty(len(distances))
    order = np.argsort(-distances, kind="mergesort")
    ranks[order] = np.arange(1, len(distances) + 1)
    # ties get their average rank
    _, inverse, counts = np.unique(-distances, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = sums[inverse] / counts[inverse]
    return float((ranks[same].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@dataclass(frozen=True)
class VerificationReport:
    accuracy: float
    accuracy_std: float
    val: float
    val_std: float
    far: float
    threshold: float
    auc: float
    pairs: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "accuracy": round(self.accuracy, 4),
            "accuracy_std": round(self.accuracy_std, 4),
            "val_at_far_1e-3": round(self.val, 4),
            "val_std": round(self.val_std, 4),
            "far": round(self.far, 5),
            "threshold": round(self.threshold, 4),
            "auc": round(self.auc, 5),
            "pairs": self.pairs,
        }


def evaluate(
    distances: np.ndarray, same: np.ndarray, *, n_folds: int = 10, far_target: float = 1e-3
) -> VerificationReport:
    """The LFW protocol: threshold chosen on k-1 folds, accuracy and VAL on the held-out fold."""
    distances = np.asarray(distances, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    accs, vals, fars, thresholds = [], [], [], []
    for train, test in folds(len(distances), n_folds):
        t = best_threshold(distances[train], same[train])
        thresholds.append(t)
        accs.append(accuracy_at(distances[test], same[test], t))
        t_far = threshold_for_far(distances[train], same[train], far_target)
        val, far = val_far_at(distances[test], same[test], t_far)
        vals.append(val)
        fars.append(far)
    return VerificationReport(
        accuracy=float(np.mean(accs)),
        accuracy_std=float(np.std(accs)),
        val=float(np.mean(vals)),
        val_std=float(np.std(vals)),
        far=float(np.mean(fars)),
        threshold=float(np.mean(thresholds)),
        auc=roc_auc(distances, same),
        pairs=len(distances),
    )
