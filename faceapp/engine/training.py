"""Training the head: triplet loss on cached trunk features, P x K batches, early stopping.

The frozen trunk is run once per face and view (:func:`prepare_features`) and its
output cached, so every epoch costs only the small head (:func:`fit_head`): this is
what makes a thousand faces train in minutes on a laptop CPU. Triplet loss and
mining: :mod:`triplet`; the network: :mod:`network`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from faceapp.engine.embed import CROP_SIZE, load_crops
from faceapp.engine.finetune_plan import FinetuneOptions, FinetunePlan
from faceapp.engine.library import Library
from faceapp.engine.network import (
    STAGES,
    centre_tensor,
    embed_head,
    heldout_embeddings,
    trunk_features,
)
from faceapp.engine.pair_metrics import HeldoutMetrics, verification_metrics
from faceapp.engine.progress import check_cancel, emit
from faceapp.engine.triplet import batch_triplet_loss

PREPARE_CHUNK = 256  # crops decoded at a time while preparing (bounds memory)


@dataclass(frozen=True)
class TrainProgress:
    """One report from ``train``; the GUI plots ``loss`` per step and ``heldout`` per epoch.

    ``stage`` is ``prepare`` (decoding crops and running the frozen trunk; ``step``
    / ``steps`` count faces) or ``train`` (``step`` / ``steps`` within the epoch).
    ``eta`` is seconds to the end of ``epochs`` (early stopping may finish sooner).
    """

    stage: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float | None  # mean loss of the current epoch so far
    heldout: HeldoutMetrics | None  # latest held-out evaluation (epoch 0 = before training)
    elapsed: float
    eta: float | None


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    active_triplets: float  # share of mined triplets with non-zero loss
    triplets: int
    heldout: HeldoutMetrics | None
    seconds: float


def augment(crops: torch.Tensor, generator: torch.Generator, *, flip: bool | None) -> torch.Tensor:
    """Light augmentation of uint8 (n, 3, 160, 160) crops.

    A random crop of 90-100 % of the side (shifted up to the slack) resized back to
    160 px, brightness / contrast / saturation x [0.85, 1.15], and a horizontal flip
    (``flip`` True/False forces it, None draws it). Kept light: the crops are
    already aligned the way the base model was trained.
    """
    from torchvision.transforms.v2 import functional as TF

    out = torch.empty_like(crops)
    for i in range(len(crops)):
        r = torch.rand(7, generator=generator).tolist()
        side = round(CROP_SIZE * (0.90 + 0.10 * r[0]))
        top = round((CROP_SIZE - side) * r[1])
        left = round((CROP_SIZE - side) * r[2])
        x = TF.resized_crop(crops[i], top, left, side, side, [CROP_SIZE, CROP_SIZE], antialias=True)
        x = TF.adjust_brightness(x, 0.85 + 0.30 * r[3])
        x = TF.adjust_contrast(x, 0.85 + 0.30 * r[4])
        x = TF.adjust_saturation(x, 0.85 + 0.30 * r[5])
        if flip if flip is not None else r[6] < 0.5:
            x = x.flip(-1)
        out[i] = x
    return out


def pk_batches(
    labels: np.ndarray, people_per_batch: int, faces_per_person: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of P x K batches (indices into ``labels``), every face used at least once.

    Each person's faces are shuffled and cut into groups of K (a short last group
    is filled by re-drawing that person's faces: they get different augmented
    views). Batches draw P distinct people with probability proportional to the
    groups they have left, so big and small people are spread over the epoch.
    When fewer than P people have groups left (the end of an epoch, or one person
    with many faces), the batch is topped up with fresh groups of other people, so
    every batch has negatives.
    """
    people_all = np.unique(labels)
    members = {int(p): np.flatnonzero(labels == p) for p in people_all}

    def draw(person: int) -> np.ndarray:
        idx = members[person]
        return rng.choice(idx, faces_per_person, replace=len(idx) < faces_per_person)

    groups: dict[int, list[np.ndarray]] = {}
    for person, idx in members.items():
        idx = rng.permutation(idx)
        chunks = [idx[i : i + faces_per_person] for i in range(0, len(idx), faces_per_person)]
        last = chunks[-1]
        if len(last) < faces_per_person:
            extra = rng.choice(
                idx, faces_per_person - len(last), replace=len(idx) < faces_per_person
            )
            chunks[-1] = np.concatenate([last, extra])
        groups[person] = chunks
    p_batch = min(people_per_batch, len(members))
    batches: list[np.ndarray] = []
    while groups:
        people = np.array(list(groups))
        left = np.array([len(groups[p]) for p in people], float)
        take = min(p_batch, len(people))
        chosen = [int(p) for p in rng.choice(people, take, replace=False, p=left / left.sum())]
        batch = [groups[p].pop() for p in chosen]
        for p in chosen:
            if not groups[p]:
                del groups[p]
        if take < p_batch:
            others = [int(p) for p in people_all if int(p) not in chosen]
            extra = rng.choice(others, p_batch - take, replace=False)
            batch += [draw(int(p)) for p in extra]
        batches.append(np.concatenate(batch))
    return batches


def prepare_features(
    lib: Library,
    the_plan: FinetunePlan,
    model: nn.Module,
    cut: int,
    preprocess: str,
    options: FinetuneOptions,
    gen: torch.Generator,
    progress: Callable[[TrainProgress], None] | None,
    cancel: Callable[[], bool] | None,
    t0: float,
    held_views: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the crops and run the frozen trunk once per view (the expensive part).

    Training faces get ``options.views`` views: the crop, its mirror image, then
    augmented copies (:func:`augment`); held-out faces get the crop, and its
    mirror image with ``held_views=2`` (for an embedder with flip test-time
    augmentation). Returns float16 CPU tensors (n, views, C, H, W) and
    (m, held_views, C, H, W). Raises :class:`Cancelled`.
    """
    device = next(model.parameters()).device
    n_train, n_held = the_plan.train_faces, the_plan.heldout_faces
    total = n_train * options.views + n_held * held_views
    epochs = options.epochs
    done = 0

    def report(done_in_call: int) -> None:
        elapsed = time.perf_counter() - t0
        now = done + done_in_call
        eta = elapsed / now * (total - now) if now else None
        emit(progress, TrainProgress("prepare", 0, epochs, now, total, None, None, elapsed, eta))
        check_cancel(cancel)

    def run(ids: list[int], views: int, augmented: bool) -> torch.Tensor:
        """(len(ids), views, C, H, W), decoding PREPARE_CHUNK crops at a time."""
        nonlocal done
        out: torch.Tensor | None = None
        for start in range(0, len(ids), PREPARE_CHUNK):
            chunk = ids[start : start + PREPARE_CHUNK]
            crops = torch.from_numpy(load_crops(lib, chunk)).permute(0, 3, 1, 2)
            for v in range(views):
                if v == 0:
                    x = crops
                elif v == 1:
                    x = crops.flip(-1)
                else:
                    x = augment(crops, gen, flip=None) if augmented else crops
                f = trunk_features(
                    model, x, cut, preprocess, str(device), options.batch_size, report
                )
                if out is None:
                    out = torch.empty((len(ids), views, *f.shape[1:]), dtype=f.dtype)
                out[start : start + len(chunk), v] = f
                done += len(chunk)
        return out if out is not None else torch.zeros((0, views, 1))

    report(0)
    train_feats = run(the_plan.train_ids, options.views, True)
    held_feats = run(the_plan.heldout_ids, held_views, False)
    return train_feats, held_feats


@dataclass
class FitResult:
    before: HeldoutMetrics | None
    after: HeldoutMetrics | None
    improved: bool
    state_dict: dict[str, torch.Tensor]
    history: list[EpochRecord]
    best_epoch: int
    stopped: str


def fit_head(
    model: nn.Module,
    cut: int,
    train_feats: torch.Tensor,
    train_labels: np.ndarray,
    held_feats: torch.Tensor,
    held_labels: np.ndarray,
    options: FinetuneOptions,
    *,
    flip: bool,
    centre: np.ndarray | None = None,
    generator: torch.Generator,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    t0: float | None = None,
) -> FitResult:
    """Train stages[cut:] on cached trunk features with the triplet loss.

    BatchNorm layers stay in eval mode: their statistics are frozen (the offline
    weights have them folded into the convolutions, and a user's batches of a
    few people would give poor statistics anyway). After every epoch the held-out
    faces are embedded; the best epoch (by :attr:`HeldoutMetrics.score`) is kept,
    and training stops after ``patience`` epochs without a better one. With a
    ``centre`` the loss is computed on centred embeddings, the space the library
    uses (see embed.Embedder), so "before" and "after" measure what the app sees.
    """
    t0 = time.perf_counter() if t0 is None else t0
    device = next(model.parameters()).device
    rng = np.random.default_rng(options.seed)
    c = centre_tensor(centre, device)
    epochs = options.epochs
    head_names = STAGES[cut:]
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.split(".")[0] in head_names)
        if p.requires_grad:
            params.append(p)
    opt: torch.optim.Optimizer
    if options.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=options.lr, weight_decay=options.weight_decay)
    else:
        opt = torch.optim.SGD(
            params, lr=options.lr, momentum=0.9, weight_decay=options.weight_decay
        )
    n_held = len(held_labels)

    def evaluate() -> HeldoutMetrics | None:
        if n_held == 0:
            return None
        model.eval()
        emb = heldout_embeddings(model, held_feats, cut, flip, centre)
        return verification_metrics(emb, held_labels)

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def report(
        epoch: int,
        step: int,
        steps: int,
        loss: float | None,
        heldout: HeldoutMetrics | None,
        eta: float | None,
    ) -> None:
        took = time.perf_counter() - t0
        emit(progress, TrainProgress("train", epoch, epochs, step, steps, loss, heldout, took, eta))

    before = evaluate()
    best_score = before.score if before is not None else -math.inf
    best_state = snapshot()
    best_epoch, bad_epochs = 0, 0
    history: list[EpochRecord] = []
    stopped = "max-epochs"
    per_batch = options.people_per_batch * options.faces_per_person
    steps_estimate = max(1, math.ceil(len(train_labels) / per_batch))
    t_train = time.perf_counter()
    steps_done = 0
    latest = before
    report(0, 0, steps_estimate, None, before, None)
    for epoch in range(1, epochs + 1):
        t_epoch = time.perf_counter()
        batches = pk_batches(train_labels, options.people_per_batch, options.faces_per_person, rng)
        losses, active, triplets = [], 0, 0
        cancelled = False
        for step, batch in enumerate(batches, 1):
            if cancel is not None and cancel():
                cancelled = True
                break
            model.eval()  # frozen BatchNorm statistics
            if options.dropout:
                model.get_submodule("dropout").train()
            view = torch.randint(train_feats.shape[1], (len(batch),), generator=generator)
            feats = train_feats[torch.from_numpy(batch), view].to(device, torch.float32)
            emb = embed_head(model, feats, cut, c)
            labels = torch.from_numpy(train_labels[batch])
            out = batch_triplet_loss(
                emb, labels, alpha=options.alpha, mining=options.mining, generator=generator
            )
            opt.zero_grad(set_to_none=True)
            if out.triplets:
                out.loss.backward()
                opt.step()
            losses.append(float(out.loss.detach()))
            active += out.active
            triplets += out.triplets
            steps_done += 1
            per_step = (time.perf_counter() - t_train) / steps_done
            eta = per_step * ((epochs - epoch) * len(batches) + len(batches) - step)
            report(epoch, step, len(batches), float(np.mean(losses)), latest, eta)
        if cancelled and not losses:
            stopped = "cancelled"
            break
        metrics = evaluate()
        latest = metrics
        history.append(
            EpochRecord(
                epoch=epoch,
                loss=float(np.mean(losses)),
                active_triplets=active / triplets if triplets else 0.0,
                triplets=triplets,
                heldout=metrics,
                seconds=time.perf_counter() - t_epoch,
            )
        )
        if metrics is None or metrics.score > best_score:
            # without held-out faces the last epoch is the best guess
            best_score = metrics.score if metrics is not None else -math.inf
            best_epoch, bad_epochs = epoch, 0
            best_state = snapshot()
        else:
            bad_epochs += 1
        remaining = (time.perf_counter() - t_train) / epoch * (epochs - epoch)
        report(epoch, len(batches), len(batches), history[-1].loss, metrics, remaining)
        if cancelled:
            stopped = "cancelled"
            break
        if metrics is not None and bad_epochs >= options.patience:
            stopped = "early-stop"
            break
    after = history[best_epoch - 1].heldout if best_epoch > 0 else before
    improved = (
        best_epoch > 0 and before is not None and after is not None and after.score > before.score
    )
    model.load_state_dict(best_state)
    return FitResult(before, after, improved, best_state, history, best_epoch, stopped)
