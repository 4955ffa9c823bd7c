"""Verification on pairs of labelled faces: the threshold, accuracy and VAL at a FAR.

Used after every fine-tuning epoch on the held-out faces, and to calibrate a new
model version's threshold. Distances are squared L2 between unit embeddings.
Imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

FAR_TARGET = 1e-3


@dataclass(frozen=True)
class HeldoutMetrics:
    """Verification on all pairs of held-out confirmed faces (squared L2 distances)."""

    accuracy: float  # best balanced accuracy (mean of same- and different-pair accuracy)
    val: float  # VAL at FAR = far_target (FaceNet 4.1): share of same pairs accepted
    far: float  # the false-accept rate actually reached (<= far_target)
    far_target: float
    auc: float
    threshold: float  # the balanced-accuracy threshold
    same_pairs: int
    diff_pairs: int

    @property
    def miss(self) -> float:
        """1 - VAL: same-person pairs missed at the target false-accept rate."""
        return 1.0 - self.val

    @property
    def score(self) -> float:
        """One number for early stopping and for "better": VAL, ties broken by AUC."""
        return self.val + 1e-3 * self.auc

    def as_dict(self) -> dict:
        out = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        out["miss"] = round(self.miss, 5)
        return out


def pair_distances(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances of all pairs (upper triangle) and whether each pair is one person."""
    e = np.asarray(emb, np.float64)
    d = np.clip(2.0 - 2.0 * e @ e.T, 0.0, 4.0)
    iu = np.triu_indices(len(e), k=1)
    return d[iu], (labels[:, None] == labels[None, :])[iu]


def balanced_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy): the threshold maximising (TPR + TNR) / 2.

    Where a range of thresholds reaches the best value, the middle of that range.

    Balanced because an album's pairs are mostly of different people; this is the
    accuracy an LFW-style balanced pair set would show.
    """
    pos = np.sort(distances[same])
    neg = np.sort(distances[~same])
    values = np.unique(distances)
    cands = np.concatenate(
        [[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]]
    )
    tpr = np.searchsorted(pos, cands, side="left") / max(len(pos), 1)
    tnr = 1.0 - np.searchsorted(neg, cands, side="left") / max(len(neg), 1)
    bal = (tpr + tnr) / 2
    is_best = bal >= bal.max() - 1e-12
    first = int(np.argmax(is_best))
    last = first
    while last + 1 < len(cands) and is_best[last + 1]:
        last += 1
    # the middle of the (first) best plateau: on well-separated pairs the lowest best
    # threshold would sit right above the farthest same-person pair and miss the next one
    return float((cands[first] + cands[last]) / 2), float(bal.max())


def verification_metrics(
    embeddings: np.ndarray, labels: Sequence[int] | np.ndarray, far_target: float = FAR_TARGET
) -> HeldoutMetrics | None:
    """Metrics on all pairs of these faces; None without same- and different-person pairs."""
    from faceapp.engine.metrics import roc_auc, threshold_for_far, val_far_at

    d, same = pair_distances(embeddings, np.asarray(labels))
    if not same.any() or same.all():
        return None
    threshold, accuracy = balanced_threshold(d, same)
    t_far = threshold_for_far(d, same, far_target)
    val, far = val_far_at(d, same, t_far)
    return HeldoutMetrics(
        accuracy=accuracy,
        val=val,
        far=far,
        far_target=far_target,
        auc=roc_auc(d, same),
        threshold=threshold,
        same_pairs=int(same.sum()),
        diff_pairs=int((~same).sum()),
    )
