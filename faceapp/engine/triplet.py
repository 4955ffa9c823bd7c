"""Triplet loss and in-batch triplet mining (FaceNet, Schroff et al. 2015, sections 3-3.1).

Distances are squared L2 between unit embeddings, ``d = ||f(a) - f(b)||^2`` in
``[0, 4]``; the loss of a triplet (anchor, positive, negative) is
``max(0, d(a, p) - d(a, n) + alpha)`` with margin ``alpha = 0.2``.

Mining happens online, inside each mini-batch of P people x K faces:

``semihard`` (the paper's choice): every anchor-positive pair of the batch is used
(the paper: "we use all anchor-positive pairs in a mini-batch while still
selecting the hard negatives"); its negative is drawn at random among the
*semi-hard* ones, ``d(a, p) < d(a, n) < d(a, p) + alpha``: farther than the
positive, but still inside the margin, so the triplet has a non-zero loss
without being one of the hardest, which the paper found to collapse the model
early in training. When a pair has no semi-hard negative:

* if some negatives are *hard* (``d(a, n) <= d(a, p)``), the least hard of them
  (largest ``d(a, n)``) is used. This is the fallback of TensorFlow's
  ``triplet_semihard_loss``; it keeps violated pairs learning without jumping to
  the hardest negative (likely a mislabelled or degenerate face in a user's album);
* otherwise every negative is already beyond the margin: the triplet's loss
  would be 0, so the pair is dropped (it carries no gradient).

``batch-hard`` (Hermans et al. 2017, "In defense of the triplet loss"): one
triplet per anchor with its farthest positive and its nearest negative. Offered
as an option; harder, and more sensitive to label noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from faceapp.engine.finetune_plan import ALPHA, MINING


def pairwise_sq_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """All squared L2 distances of an (n, d) batch, clamped at 0 against rounding."""
    sq = (embeddings * embeddings).sum(dim=1)
    d = sq[:, None] - 2.0 * embeddings @ embeddings.T + sq[None, :]
    return d.clamp_min(0.0)


def triplet_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    alpha: float = ALPHA,
) -> torch.Tensor:
    """Mean of ``max(0, ||a - p||^2 - ||a - n||^2 + alpha)`` over the rows (0 when empty)."""
    if len(anchors) == 0:
        return anchors.sum() * 0.0
    d_ap = ((anchors - positives) ** 2).sum(dim=1)
    d_an = ((anchors - negatives) ** 2).sum(dim=1)
    return torch.relu(d_ap - d_an + alpha).mean()


@dataclass(frozen=True)
class Triplets:
    """Indices into the batch, one entry per mined triplet, and how they were found."""

    anchors: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor
    semihard: int  # triplets whose negative was semi-hard
    fallback_hard: int  # pairs without a semi-hard negative that used the least hard one
    dropped: int  # pairs whose negatives were all beyond the margin (zero loss)

    def __len__(self) -> int:
        return len(self.anchors)


def _empty_triplets(device: torch.device, dropped: int = 0) -> Triplets:
    e = torch.zeros(0, dtype=torch.long, device=device)
    return Triplets(e, e, e, 0, 0, dropped)


def semihard_triplets(
    distances: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = ALPHA,
    generator: torch.Generator | None = None,
) -> Triplets:
    """FaceNet semi-hard mining on a precomputed (n, n) squared-distance matrix.

    Every ordered anchor-positive pair (a != p, same label) gets one negative,
    random among ``d(a,p) < d(a,n) < d(a,p) + alpha``; see the module note for
    pairs that have none. Mining needs no gradient, so it runs on detached values.
    """
    d = distances.detach()
    labels = labels.to(d.device)
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=d.device)
    a_idx, p_idx = torch.nonzero(same & ~eye, as_tuple=True)
    if len(a_idx) == 0:
        return _empty_triplets(d.device)
    d_ap = d[a_idx, p_idx][:, None]  # (pairs, 1)
    d_an = d[a_idx]  # (pairs, n)
    negative = ~same[a_idx]  # (pairs, n)
    semi = negative & (d_an > d_ap) & (d_an < d_ap + alpha)
    hard = negative & (d_an <= d_ap)
    has_semi = semi.any(dim=1)
    has_hard = hard.any(dim=1)

    # random semi-hard negative: argmax of uniform noise restricted to the allowed set
    noise = torch.rand(d_an.shape, generator=generator, device="cpu").to(d.device)
    pick_semi = torch.where(semi, noise, torch.full_like(noise, -1.0)).argmax(dim=1)
    # least hard of the hard negatives: the largest distance among them
    pick_hard = torch.where(hard, d_an, torch.full_like(d_an, -1.0)).argmax(dim=1)

    use_hard = ~has_semi & has_hard
    keep = has_semi | use_hard
    negatives = torch.where(has_semi, pick_semi, pick_hard)
    return Triplets(
        anchors=a_idx[keep],
        positives=p_idx[keep],
        negatives=negatives[keep],
        semihard=int(has_semi.sum()),
        fallback_hard=int(use_hard.sum()),
        dropped=int((~keep).sum()),
    )


def batch_hard_triplets(distances: torch.Tensor, labels: torch.Tensor) -> Triplets:
    """For every anchor with a positive and a negative: farthest positive, nearest negative."""
    d = distances.detach()
    labels = labels.to(d.device)
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=d.device)
    pos = same & ~eye
    neg = ~same
    valid = pos.any(dim=1) & neg.any(dim=1)
    if not valid.any():
        return _empty_triplets(d.device)
    hardest_pos = torch.where(pos, d, torch.full_like(d, -1.0)).argmax(dim=1)
    hardest_neg = torch.where(neg, d, torch.full_like(d, float("inf"))).argmin(dim=1)
    anchors = torch.nonzero(valid, as_tuple=True)[0]
    return Triplets(anchors, hardest_pos[anchors], hardest_neg[anchors], 0, 0, 0)


@dataclass(frozen=True)
class BatchLoss:
    loss: torch.Tensor  # scalar, differentiable
    triplets: int
    active: int  # triplets with a non-zero loss
    semihard: int
    fallback_hard: int
    dropped: int


def batch_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float = ALPHA,
    mining: str = "semihard",
    generator: torch.Generator | None = None,
) -> BatchLoss:
    """Mine triplets in the batch and return their mean triplet loss."""
    if mining not in MINING:
        raise ValueError(f"unknown mining {mining!r} (expected one of {', '.join(MINING)})")
    distances = pairwise_sq_distances(embeddings)
    if mining == "semihard":
        t = semihard_triplets(distances, labels, alpha, generator)
    else:
        t = batch_hard_triplets(distances, labels)
    if len(t) == 0:
        zero = embeddings.sum() * 0.0
        return BatchLoss(zero, 0, 0, 0, 0, t.dropped)
    # recompute the chosen distances from the embeddings so the gradient is exact
    a, p, n = embeddings[t.anchors], embeddings[t.positives], embeddings[t.negatives]
    d_ap = ((a - p) ** 2).sum(dim=1)
    d_an = ((a - n) ** 2).sum(dim=1)
    per = torch.relu(d_ap - d_an + alpha)
    return BatchLoss(
        loss=per.mean(),
        triplets=len(t),
        active=int((per.detach() > 0).sum()),
        semihard=t.semihard,
        fallback_hard=t.fallback_hard,
        dropped=t.dropped,
    )
