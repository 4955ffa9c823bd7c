"""Clustering quality against ground-truth identities: pairwise P/R/F1, BCubed, ARI.

Conventions (as in the face-clustering literature): every noise face (label -1)
counts as its own singleton cluster, so leaving a face in Unknown costs recall but
never precision. Everything is computed from the contingency table in O(n log n),
so 300,000 faces are no problem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClusterScores:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    ari: float
    clusters: int  # non-noise clusters
    unknown_fraction: float  # share of faces left as noise
    faces: int

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _singletons(pred: np.ndarray) -> np.ndarray:
    """Noise (-1) becomes one fresh cluster per face."""
    pred = np.asarray(pred, dtype=np.int64).copy()
    noise = pred < 0
    top = int(pred.max()) + 1 if (~noise).any() else 0
    pred[noise] = top + np.arange(int(noise.sum()))
    return pred


def _contingency(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts n_ij of the non-empty (truth, pred) cells and the row/column of each cell."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    cells, counts = np.unique(np.stack([t.ravel(), p.ravel()], axis=1), axis=0, return_counts=True)
    return counts.astype(np.float64), cells[:, 0], cells[:, 1]


def _pairs(x: Any) -> Any:
    """Unordered pairs among x items (element-wise for arrays)."""
    return x * (x - 1) / 2.0


def cluster_scores(truth: np.ndarray, pred: np.ndarray) -> ClusterScores:
    """Scores of predicted labels ``pred`` (-1 = noise) against identities ``truth``."""
    truth = np.asarray(truth)
    pred_raw = np.asarray(pred, dtype=np.int64)
    n = len(truth)
    if n == 0:
        return ClusterScores(0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0)
    pred = _singletons(pred_raw)
    nij, ti, pj = _contingency(truth, pred)
    a = np.bincount(ti, weights=nij)  # truth class sizes
    b = np.bincount(pj, weights=nij)  # predicted cluster sizes
    # pairwise: pairs put together that belong together
    tp = _pairs(nij).sum()
    pred_pairs = _pairs(b).sum()
    true_pairs = _pairs(a).sum()
    pp = tp / pred_pairs if pred_pairs else 1.0
    pr = tp / true_pairs if true_pairs else 1.0
    pf = 2 * pp * pr / (pp + pr) if pp + pr else 0.0
    # BCubed: per face, the share of its cluster that is its identity (precision)
    # and the share of its identity that is in its cluster (recall)
    bp = float((nij * nij / b[pj]).sum() / n)
    br = float((nij * nij / a[ti]).sum() / n)
    bf = 2 * bp * br / (bp + br) if bp + br else 0.0
    # adjusted Rand index
    total = _pairs(np.float64(n))
    expected = pred_pairs * true_pairs / total if total else 0.0
    maximum = (pred_pairs + true_pairs) / 2.0
    ari = (tp - expected) / (maximum - expected) if maximum != expected else 1.0
    clusters = len(np.unique(pred_raw[pred_raw >= 0]))
    return ClusterScores(
        float(pp),
        float(pr),
        float(pf),
        bp,
        br,
        float(bf),
        float(ari),
        int(clusters),
        float((pred_raw < 0).mean()),
        int(n),
    )


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index between two clusterings, noise as singletons on both sides."""
    return cluster_scores(_singletons(a), b).ari
