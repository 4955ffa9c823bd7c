"""Fine-tune the embedder on the people the user confirmed (FaceNet triplet loss).

The API the GUI dialog and the CLI share::

    p = plan(lib)                                 # who and what will be trained on
    result = train(lib, options, progress=..., cancel=...)   # nothing is written
    report = accept(lib, result, progress=..., cancel=...)   # new version, re-embed, switch
    discard(result)                               # or: forget it, the library is untouched
    versions(lib) / use_model(lib, version) / remove_version(lib, version)

Training data are the stored 160x160 crops of confirmed faces (people with at
least two), split per person into a training part and a held-out part that
measures progress (verification accuracy and VAL at FAR = 1e-3 on held-out
pairs). Only the last layers learn (see ``FinetuneOptions.trainable``); the
frozen trunk is run once per face and augmented view, and its output is cached,
so every epoch costs only the small head: this is what makes a thousand faces
train in minutes on a laptop CPU. Triplet loss and mining: :mod:`triplet`.

``accept`` writes the weights atomically under ``data_dir()/models`` (with
sha256 and a metadata sidecar), registers a model row with status
``building``, re-embeds every face from its stored crop, recalibrates the
threshold on held-out confirmed pairs, marks the row ``ready`` and only then
switches the active model. A crash or kill anywhere before the switch leaves the
old version active with all of its embeddings; the half-built version is
cleaned up by the next ``accept`` (or ``remove_version``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from faceapp import config
from faceapp.engine.distances import squared_distances
from faceapp.engine.files import sha256_file, write_atomic
from faceapp.engine.library import Library, LibraryError, ModelInfo, blob_to_matrix
from faceapp.engine.triplet import ALPHA, MINING, batch_triplet_loss
from faceapp.errors import FaceAppError

CROP_SIZE = 160
FAR_TARGET = 1e-3
MODELS_DIR = "models"
PREPARE_CHUNK = 256  # crops decoded at a time while preparing (bounds memory)
MIN_CALIBRATION_SAME_PAIRS = 10  # fewer held-out same-person pairs: keep the old threshold
STALE_FOREIGN_BUILD_S = 24 * 3600  # a 'building' version from another machine: stale after

# InceptionResnetV1's forward pass, stage by stage (facenet-pytorch 2.5.3).
STAGES = (
    "conv2d_1a",
    "conv2d_2a",
    "conv2d_2b",
    "maxpool_3a",
    "conv2d_3b",
    "conv2d_4a",
    "conv2d_4b",
    "repeat_1",
    "mixed_6a",
    "repeat_2",
    "mixed_7a",
    "repeat_3",
    "block8",
    "avgpool_1a",
    "dropout",
    "last_linear",
    "last_bn",
)
# trainable choice -> first stage of the part that learns (everything after it learns too)
TRAINABLE = {
    "last": "dropout",  # last_linear + last_bn
    "block8": "block8",
    "repeat_3": "repeat_3",
    "mixed_7a": "mixed_7a",
    "repeat_2": "repeat_2",
}


class FinetuneError(FaceAppError):
    """Fine-tuning cannot run or be accepted (too few labels, no weights, stale result)."""


class Cancelled(Exception):
    """Raised inside the engine when the cancel callback asks to stop."""


# -- options, plan, progress, results ------------------------------------------------------


@dataclass(frozen=True)
class FinetuneOptions:
    """How to train. The defaults were chosen by measurement.

    Album simulated from LFW (bench/finetune_gain.py: 60 people, ~880 confirmed
    faces, CASIA-WebFace weights, centred embeddings); measured on the other half
    of the same people (miss rate 1 - VAL at FAR 1e-3, base 0.042) and on
    pairsDevTest (10-fold accuracy, base 0.982):

    =====================================  ===========  ==========
    variant (others as the defaults)       miss after   pairsDevTest
    =====================================  ===========  ==========
    block8 + last (default), 3 seeds       .010-.017    .984-.988
    repeat_3 + block8 + last               .014-.015    .978-.986
    last_linear + last_bn only             .017         .985
    batch-hard mining (repeat_3)           .014         .977
    3 views instead of 2 (flip + jitter)   .014-.021    .978-.987
    lr 3e-4                                .034         .979
    =====================================  ===========  ==========

    Training block8 (the last Inception-ResNet block) with last_linear/last_bn
    gains as much as training more layers and hurts unseen people least, at a
    fraction of the cost per step. Batch-hard mining gave an erratic held-out
    curve (FaceNet's warning about the hardest negatives). Adam at 1e-4 (3e-5
    converged twice as slowly to the same result) without weight decay (decay
    towards zero pulls pretrained weights away from what they know; early
    stopping on held-out faces is the regulariser). Two cached views per face
    (the crop and its mirror image); extra jittered views cost a trunk pass each
    and did not help. BatchNorm statistics stay frozen.
    """

    epochs: int = 30  # upper bound; early stopping usually ends sooner
    people_per_batch: int = 16  # P
    faces_per_person: int = 4  # K
    mining: str = "semihard"  # or "batch-hard"
    alpha: float = ALPHA
    trainable: str = "block8"  # see TRAINABLE
    optimizer: str = "adam"  # or "sgd" (momentum 0.9)
    lr: float = 1e-4
    weight_decay: float = 0.0
    dropout: bool = False  # the model's dropout (p=0.6) before last_linear, while training
    views: int = 2  # cached views per training face: crop, mirror image, then jittered copies
    heldout_fraction: float = 0.25
    max_faces_per_person: int = 200  # training faces per person (big people are subsampled)
    max_train_faces: int = 5000  # in all: bounds time and memory (the biggest people give way)
    max_heldout_faces: int = 1500  # bounds the pairwise evaluation after every epoch
    patience: int = 6  # epochs without a better held-out score before stopping
    seed: int = 0
    device: str = "auto"
    batch_size: int = 32  # for the frozen trunk and evaluation

    def check(self) -> None:
        if self.mining not in MINING:
            raise FinetuneError(f"unknown mining {self.mining!r} (one of {', '.join(MINING)})")
        if self.trainable not in TRAINABLE:
            raise FinetuneError(
                f"unknown trainable part {self.trainable!r} (one of {', '.join(TRAINABLE)})"
            )
        if self.optimizer not in ("adam", "sgd"):
            raise FinetuneError(f"unknown optimizer {self.optimizer!r} (adam or sgd)")
        if self.epochs < 1 or self.people_per_batch < 2 or self.faces_per_person < 2:
            raise FinetuneError("need epochs >= 1, people_per_batch >= 2, faces_per_person >= 2")
        if self.views < 1 or not 0.0 <= self.heldout_fraction < 1.0:
            raise FinetuneError("need views >= 1 and 0 <= heldout_fraction < 1")


@dataclass(frozen=True)
class PersonPlan:
    person_id: int
    name: str
    faces: int  # confirmed faces
    train: int
    heldout: int


@dataclass(frozen=True)
class FinetunePlan:
    """What ``train`` will use; shown by the dialog before Start."""

    people: list[PersonPlan]  # people with >= 2 confirmed faces
    skipped_people: int  # people with a single confirmed face (not usable)
    train_ids: list[int]
    train_labels: list[int]  # person ids, parallel to train_ids
    heldout_ids: list[int]
    heldout_labels: list[int]
    base_model: ModelInfo | None
    can_train: bool
    reason: str | None  # why not, when can_train is False
    warnings: list[str] = field(default_factory=list)

    @property
    def train_faces(self) -> int:
        return len(self.train_ids)

    @property
    def heldout_faces(self) -> int:
        return len(self.heldout_ids)

    def as_dict(self) -> dict:
        return {
            "people": len(self.people),
            "train_faces": self.train_faces,
            "heldout_faces": self.heldout_faces,
            "skipped_people": self.skipped_people,
            "base_model": self.base_model.id if self.base_model else None,
            "can_train": self.can_train,
            "reason": self.reason,
            "warnings": self.warnings,
        }


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


@dataclass
class FinetuneResult:
    """What ``train`` produced; nothing of it is in the library until ``accept``."""

    before: HeldoutMetrics | None
    after: HeldoutMetrics | None
    improved: bool  # after.score > before.score: the run is worth keeping
    state_dict: dict[str, torch.Tensor] | None  # the full model at the best epoch
    history: list[EpochRecord]
    best_epoch: int  # 0 = the base model was never beaten
    stopped: str  # "early-stop", "max-epochs", "cancelled"
    cancelled: bool
    seconds: float
    prepare_seconds: float
    options: FinetuneOptions
    plan: dict
    base_model_id: int
    base_sha256: str
    base_source: str
    preprocess: str
    flip: bool
    centre: np.ndarray | None  # subtracted from embeddings, then renormalised (as the base)
    threshold: float  # the base version's threshold (accept recalibrates)
    heldout_ids: list[int]
    device: str

    def as_dict(self) -> dict:
        return {
            "before": self.before.as_dict() if self.before else None,
            "after": self.after.as_dict() if self.after else None,
            "improved": self.improved,
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "stopped": self.stopped,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 2),
            "prepare_seconds": round(self.prepare_seconds, 2),
            "plan": self.plan,
            "base_model": self.base_model_id,
            "device": self.device,
            "options": asdict(self.options),
            "history": [
                {
                    "epoch": h.epoch,
                    "loss": round(h.loss, 5),
                    "active_triplets": round(h.active_triplets, 4),
                    "val": None if h.heldout is None else round(h.heldout.val, 5),
                    "accuracy": None if h.heldout is None else round(h.heldout.accuracy, 5),
                    "seconds": round(h.seconds, 2),
                }
                for h in self.history
            ],
        }


@dataclass(frozen=True)
class AcceptProgress:
    stage: str  # "save", "embed", "calibrate", "switch"
    done: int
    total: int
    elapsed: float
    eta: float | None


@dataclass(frozen=True)
class AcceptReport:
    model_id: int | None  # None when cancelled
    activated: bool
    cancelled: bool
    threshold: float | None
    threshold_source: str | None
    faces_embedded: int
    seconds: float
    path: str | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VersionInfo:
    """A model version as the "models" list shows it."""

    id: int
    name: str
    source: str
    status: str
    active: bool
    threshold: float
    threshold_source: str
    embedded_faces: int
    total_faces: int
    path: str | None
    file_ok: bool | None  # None for versions without a weights file of their own
    metadata: dict

    def as_dict(self) -> dict:
        keep = ("base_model", "people", "train_faces", "before", "after", "created")
        return {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "status": self.status,
            "active": self.active,
            "threshold": round(self.threshold, 4),
            "threshold_source": self.threshold_source,
            "embedded_faces": self.embedded_faces,
            "total_faces": self.total_faces,
            "path": self.path,
            "file_ok": self.file_ok,
            **{k: self.metadata[k] for k in keep if k in self.metadata},
        }


# -- plan ----------------------------------------------------------------------------------


def _confirmed_faces(lib: Library) -> list[tuple[int, int, str]]:
    """(face id, person id, person name) of confirmed faces on photos present on disk."""
    return lib.conn.execute(
        "SELECT f.id, f.person_id, pe.name FROM faces f JOIN photos p ON p.id = f.photo_id"
        " JOIN people pe ON pe.id = f.person_id WHERE p.status = 'ok' ORDER BY f.id"
    ).fetchall()


def _cap(counts: list[int], total: int, per_item: int | None = None) -> int:
    """The largest per-person cap c with sum(min(n, c)) <= total (water-filling)."""
    cap = max(counts, default=0) if per_item is None else min(per_item, max(counts, default=0))
    while cap > 2 and sum(min(n, cap) for n in counts) > total:
        cap -= max(1, cap // 20)
    return max(cap, 2)


def plan(lib: Library, options: FinetuneOptions | None = None) -> FinetunePlan:
    """Who will be trained on: confirmed faces of people with >= 2, split per person.

    The split is deterministic (seeded per person): the same labels give the same
    held-out faces, so "before" and "after" of two runs are comparable. A person
    with n faces holds out round(n * heldout_fraction) of them but keeps at least
    two for training (people with 2-3 faces are training-only). Very large albums
    are capped (``max_faces_per_person``, ``max_train_faces``,
    ``max_heldout_faces``) by trimming the people with the most faces first.
    """
    options = options or FinetuneOptions()
    options.check()
    by_person: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for face_id, person_id, name in _confirmed_faces(lib):
        by_person.setdefault(person_id, []).append(face_id)
        names[person_id] = name
    splits: dict[int, tuple[list[int], list[int]]] = {}
    skipped = 0
    for person_id in sorted(by_person):
        ids = by_person[person_id]
        if len(ids) < 2:
            skipped += 1
            continue
        rng = np.random.default_rng([options.seed, person_id])
        order = [ids[i] for i in rng.permutation(len(ids))]
        n_held = min(round(len(ids) * options.heldout_fraction), len(ids) - 2)
        splits[person_id] = (order[n_held:], order[:n_held])
    train_cap = _cap(
        [len(t) for t, _h in splits.values()], options.max_train_faces, options.max_faces_per_person
    )
    held_cap = _cap([len(h) for _t, h in splits.values()], options.max_heldout_faces)
    people: list[PersonPlan] = []
    train_ids: list[int] = []
    train_labels: list[int] = []
    held_ids: list[int] = []
    held_labels: list[int] = []
    for person_id, (train, held) in splits.items():
        train, held = sorted(train[:train_cap]), sorted(held[:held_cap])
        people.append(
            PersonPlan(
                person_id, names[person_id], len(by_person[person_id]), len(train), len(held)
            )
        )
        train_ids += train
        train_labels += [person_id] * len(train)
        held_ids += held
        held_labels += [person_id] * len(held)
    base = lib.active_model()
    reason = None
    if base is None:
        reason = "the library has no model yet: scan a folder first"
    elif len(people) < 2:
        reason = (
            "fine-tuning needs at least two people with two or more confirmed faces each"
            f" (this library has {len(people)})"
        )
    warnings: list[str] = []
    held_people = sum(1 for p in people if p.heldout >= 2)
    if reason is None and held_people < 2:
        warnings.append(
            "too few confirmed faces to hold some out: progress cannot be measured, so the"
            " result cannot be judged better or worse (confirm more faces of more people)"
        )
    elif reason is None:
        same = sum(p.heldout * (p.heldout - 1) // 2 for p in people)
        diff = (len(held_ids) ** 2 - sum(p.heldout**2 for p in people)) // 2
        if diff < 1 / FAR_TARGET:
            warnings.append(
                f"only {diff} held-out pairs of different people (FAR {FAR_TARGET:g} needs"
                f" {round(1 / FAR_TARGET)}): VAL is measured with no false accept allowed"
            )
        if same < 20:
            warnings.append(f"only {same} held-out same-person pairs: the measurement is rough")
    return FinetunePlan(
        people=people,
        skipped_people=skipped,
        train_ids=train_ids,
        train_labels=train_labels,
        heldout_ids=held_ids,
        heldout_labels=held_labels,
        base_model=base,
        can_train=reason is None,
        reason=reason,
        warnings=warnings,
    )


# -- crops, weights, model parts -----------------------------------------------------------


def decode_crop(jpeg: bytes) -> np.ndarray:
    """A stored crop as uint8 (160, 160, 3) RGB."""
    with Image.open(io.BytesIO(jpeg)) as src:
        im = src.convert("RGB")
        if im.size != (CROP_SIZE, CROP_SIZE):
            im = im.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def load_crops(lib: Library, face_ids: Sequence[int]) -> np.ndarray:
    """Decode the stored crops of these faces, in this order: uint8 (n, 160, 160, 3)."""
    out = np.empty((len(face_ids), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    crops = lib.face_crops(face_ids)
    for i, face_id in enumerate(face_ids):
        out[i] = decode_crop(crops[int(face_id)])
    return out


def preprocess_tensor(x: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8 (n, 3, 160, 160) -> float, as the weights expect (same as embed.preprocess)."""
    x = x.float()
    if mode == "fixed":
        return (x - 127.5) / 128.0
    if mode == "prewhiten":
        flat = x.reshape(len(x), -1)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1).clamp(min=1.0 / math.sqrt(flat.shape[1])).view(-1, 1, 1, 1)
        return (x - mean) / std
    raise FinetuneError(f"unknown preprocessing {mode!r}")


def build_model(state_dict: dict[str, torch.Tensor], device: str) -> nn.Module:
    """An InceptionResnetV1 (embedding head, no classifier) with these weights, in eval mode."""
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=False)
    state = {k: v for k, v in state_dict.items() if not k.startswith("logits.")}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def run_stages(model: nn.Module, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Run stages[start:stop] of the forward pass (the full pass is 0..len(STAGES))."""
    for name in STAGES[start:stop]:
        if name == "last_linear":
            x = x.flatten(1)
        x = getattr(model, name)(x)
    return x


def _embed_head(
    model: nn.Module, features: torch.Tensor, cut: int, centre: torch.Tensor | None = None
) -> torch.Tensor:
    """Unit embeddings from trunk features; with a centre, as the Embedder centres them."""
    e = F.normalize(run_stages(model, features, cut, len(STAGES)), dim=1)
    return e if centre is None else F.normalize(e - centre, dim=1)


def _centre_tensor(centre: np.ndarray | None, device: torch.device | str) -> torch.Tensor | None:
    return None if centre is None else torch.as_tensor(centre, dtype=torch.float32).to(device)


def _base_weights(info: ModelInfo):  # -> weights.LoadedWeights
    """The base weights a version without a file of its own was embedded with.

    Looked up by source (as the scan pipeline does), never downloaded, and checked
    against the version's checksum.
    """
    from faceapp.engine import weights as weights_mod

    found = None
    if info.source == "casia-webface":
        found = weights_mod.offline_weights()
    elif info.source == "vggface2":
        found = weights_mod.vggface2_weights(allow_download=False)
    elif info.source == "user" and Path(info.origin).is_file():
        found = weights_mod.resolve_weights(Path(info.origin), allow_download=False)
    elif info.source == "random-dev" and os.environ.get(weights_mod.RANDOM_ENV) == "1":
        found = weights_mod.random_weights()
    if found is None:
        raise FinetuneError(
            f"the {info.source} weights of model version {info.id} are not on this machine"
        )
    if found.sha256 != info.sha256:
        raise FinetuneError(
            f"model version {info.id} uses {info.source} weights ({info.sha256[:12]}) but"
            f" other weights ({found.sha256[:12]}) were found on this machine"
        )
    return found


def model_state_dict(info: ModelInfo) -> dict[str, torch.Tensor]:
    """The weights of a model version: its own file, or the base weights it came with.

    Raises :class:`FinetuneError` when the file is gone or changed, or when the
    weights found on this machine are not the ones the version was embedded with.
    """
    from faceapp.engine import weights as weights_mod

    if not info.path:
        return _base_weights(info).state_dict
    path = Path(info.path)
    if not path.is_file():
        raise FinetuneError(f"the weights of model version {info.id} are missing: {path}")
    if sha256_file(path) != info.sha256:
        raise FinetuneError(f"the weights of model version {info.id} changed on disk: {path}")
    return weights_mod.load_state_dict_file(path)


def version_centre(info: ModelInfo) -> np.ndarray | None:
    """The mean embedding a version's embeddings are centred on (None: not centred).

    Fine-tuned versions keep their base's centre in their metadata (training runs
    on centred embeddings); base versions use the one their weights come with,
    as the scan pipeline does.
    """
    if "centre" in info.metadata:
        value = info.metadata["centre"]
        return None if value is None else np.asarray(value, np.float32)
    if info.path:
        return None
    from faceapp.engine import weights as weights_mod

    defaults = weights_mod.SOURCE_DEFAULTS.get(info.source)
    if defaults is None or not defaults.centre:
        return None
    return np.load(weights_mod.CENTRES_DIR / defaults.centre).astype(np.float32)


def version_weights(info: ModelInfo):  # -> weights.LoadedWeights
    """Everything needed to embed new faces with a version: weights, centre, threshold.

    For the scan pipeline and the GUI, so that a fine-tuned version embeds new
    photos exactly as ``accept`` re-embedded the old ones.
    """
    from faceapp.engine import weights as weights_mod

    return weights_mod.LoadedWeights(
        state_dict=model_state_dict(info),
        source=info.source,
        origin=info.origin,
        sha256=info.sha256,
        preprocess=info.preprocess,
        threshold=info.threshold,
        threshold_source=info.threshold_source,
        file=Path(info.path) if info.path else None,
        centre=version_centre(info),
    )


# -- augmentation and batches --------------------------------------------------------------


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


# -- evaluation ----------------------------------------------------------------------------


def _pair_distances(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(emb, np.float64)
    d = squared_distances(e, e)
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

    d, same = _pair_distances(embeddings, np.asarray(labels))
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


# -- training ------------------------------------------------------------------------------


def _emit(progress: Callable | None, item: object) -> None:
    if progress is not None:
        progress(item)


def _check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled()


@torch.inference_mode()
def trunk_features(
    model: nn.Module,
    crops: torch.Tensor,
    cut: int,
    preprocess: str,
    device: str | torch.device,
    batch_size: int,
    on_batch: Callable[[int], None],
) -> torch.Tensor:
    """Frozen-trunk output of uint8 crops, cached as float16 on the CPU."""
    out = []
    for start in range(0, len(crops), batch_size):
        x = preprocess_tensor(crops[start : start + batch_size], preprocess).to(device)
        out.append(run_stages(model, x, 0, cut).to("cpu", torch.float16))
        on_batch(min(start + batch_size, len(crops)))
    return torch.cat(out) if out else torch.zeros(0)


@torch.inference_mode()
def heldout_embeddings(
    model: nn.Module,
    feats: torch.Tensor,
    cut: int,
    flip: bool,
    centre: np.ndarray | None = None,
    batch: int = 128,
) -> np.ndarray:
    """Embeddings, as the Embedder computes them, from cached (n, views, ...) trunk features.

    View 0 is the crop; with ``flip`` view 1 is its mirror image, added before
    normalising; with a ``centre`` it is subtracted and the result renormalised.
    """
    device = next(model.parameters()).device
    c = _centre_tensor(centre, device)
    out = []
    for start in range(0, len(feats), batch):
        f = feats[start : start + batch].to(device, torch.float32)
        e = _embed_head(model, f[:, 0], cut)
        if flip:
            e = F.normalize(e + _embed_head(model, f[:, 1], cut), dim=1)
        if c is not None:
            e = F.normalize(e - c, dim=1)
        out.append(e.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 512), np.float32)


def train(
    lib: Library,
    options: FinetuneOptions | None = None,
    *,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    the_plan: FinetunePlan | None = None,
    base_state_dict: dict[str, torch.Tensor] | None = None,
    base_centre: np.ndarray | None = None,
) -> FinetuneResult:
    """Fine-tune the active model on the confirmed faces; the library is only read.

    Returns the best model seen (by held-out score) with before/after metrics.
    ``cancel`` is polled between batches: a cancel while preparing returns a
    result with no model (``state_dict`` None); a cancel while training stops
    there and returns the best model so far, which may still be accepted.
    ``base_state_dict`` (with ``base_centre``, None for none) overrides the active
    version's weights (tests, benchmarks).
    Runs in the caller's thread: the GUI calls it from a worker.
    """
    with torch.random.fork_rng(devices=[]):  # seeded dropout must not reseed the caller
        return _train(lib, options, progress, cancel, the_plan, base_state_dict, base_centre)


def _train(
    lib: Library,
    options: FinetuneOptions | None,
    progress: Callable[[TrainProgress], None] | None,
    cancel: Callable[[], bool] | None,
    the_plan: FinetunePlan | None,
    base_state_dict: dict[str, torch.Tensor] | None,
    base_centre: np.ndarray | None,
) -> FinetuneResult:
    options = options or FinetuneOptions()
    options.check()
    t0 = time.perf_counter()
    the_plan = the_plan or plan(lib, options)
    if not the_plan.can_train:
        raise FinetuneError(the_plan.reason or "nothing to train on")
    base_info = the_plan.base_model
    assert base_info is not None
    device = config.resolve_device(options.device)
    flip = bool(base_info.metadata.get("flip", False))
    if base_state_dict is not None:
        state, centre = base_state_dict, base_centre
    else:
        state, centre = model_state_dict(base_info), version_centre(base_info)
    gen = torch.Generator().manual_seed(options.seed)
    torch.manual_seed(options.seed)  # dropout, if enabled (train() forks the global RNG)
    model = build_model(state, device)
    cut = STAGES.index(TRAINABLE[options.trainable])
    fixed: dict[str, Any] = {
        "options": options,
        "plan": the_plan.as_dict(),
        "base_model_id": base_info.id,
        "base_sha256": base_info.sha256,
        "base_source": base_info.source,
        "preprocess": base_info.preprocess,
        "flip": flip,
        "centre": None if centre is None else np.asarray(centre, np.float32),
        "threshold": base_info.threshold,
        "heldout_ids": list(the_plan.heldout_ids),
        "device": device,
    }
    try:
        train_feats, held_feats = prepare_features(
            lib,
            the_plan,
            model,
            cut,
            base_info.preprocess,
            options,
            gen,
            progress,
            cancel,
            t0,
            held_views=2 if flip else 1,
        )
    except Cancelled:
        seconds = time.perf_counter() - t0
        return FinetuneResult(
            before=None,
            after=None,
            improved=False,
            state_dict=None,
            history=[],
            best_epoch=0,
            stopped="cancelled",
            cancelled=True,
            seconds=seconds,
            prepare_seconds=seconds,
            **fixed,
        )
    prepare_seconds = time.perf_counter() - t0
    fit = fit_head(
        model,
        cut,
        train_feats,
        np.asarray(the_plan.train_labels),
        held_feats,
        np.asarray(the_plan.heldout_labels),
        options,
        flip=flip,
        centre=centre,
        generator=gen,
        progress=progress,
        cancel=cancel,
        t0=t0,
    )
    return FinetuneResult(
        before=fit.before,
        after=fit.after,
        improved=fit.improved,
        state_dict=fit.state_dict,
        history=fit.history,
        best_epoch=fit.best_epoch,
        stopped=fit.stopped,
        cancelled=fit.stopped == "cancelled",
        seconds=time.perf_counter() - t0,
        prepare_seconds=prepare_seconds,
        **fixed,
    )


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
        _emit(progress, TrainProgress("prepare", 0, epochs, now, total, None, None, elapsed, eta))
        _check_cancel(cancel)

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
                f = trunk_features(model, x, cut, preprocess, device, options.batch_size, report)
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
    c = _centre_tensor(centre, device)
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
    _emit(
        progress,
        TrainProgress(
            "train", 0, epochs, 0, steps_estimate, None, before, time.perf_counter() - t0, None
        ),
    )
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
            emb = _embed_head(model, feats, cut, c)
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
            _emit(
                progress,
                TrainProgress(
                    "train",
                    epoch,
                    epochs,
                    step,
                    len(batches),
                    float(np.mean(losses)),
                    latest,
                    time.perf_counter() - t0,
                    eta,
                ),
            )
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
        _emit(
            progress,
            TrainProgress(
                "train",
                epoch,
                epochs,
                len(batches),
                len(batches),
                history[-1].loss,
                metrics,
                time.perf_counter() - t0,
                remaining,
            ),
        )
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


def discard(result: FinetuneResult) -> None:
    """Forget a trained model. The library was never written to, so nothing else happens."""
    result.state_dict = None


# -- versions ------------------------------------------------------------------------------


def models_dir() -> Path:
    path = config.data_dir() / MODELS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_weights(state_dict: dict[str, torch.Tensor], metadata: dict) -> tuple[Path, str]:
    """Write a state dict (and a JSON sidecar) atomically; returns (path, sha256 of the file)."""
    directory = models_dir()
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = directory / f"finetuned-{time.strftime('%Y%m%d-%H%M%S')}-{sha[:12]}.pt"
    write_atomic(path, data)
    meta = json.dumps({**metadata, "sha256": sha, "file": path.name}, indent=1).encode()
    write_atomic(path.with_suffix(".json"), meta)
    return path, sha


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def cleanup_incomplete(lib: Library) -> list[int]:
    """Remove versions left 'building' by a run that died (its process is gone)."""
    removed = []
    host = socket.gethostname()
    for info in lib.models():
        if info.status != "building":
            continue
        owner = info.metadata.get("pid")
        if info.metadata.get("host") == host:
            if isinstance(owner, int) and owner != os.getpid() and _pid_alive(owner):
                continue  # another process is building it right now
        elif time.time() - float(info.metadata.get("started", 0)) < STALE_FOREIGN_BUILD_S:
            continue  # built from another machine (shared library), maybe still running
        remove_version(lib, info.id)
        removed.append(info.id)
    return removed


def remove_version(lib: Library, version: int) -> None:
    """Delete a version (not the active one): its row, its embeddings and its weights file."""
    active = lib.active_model()
    if active is not None and active.id == version:
        raise FinetuneError(f"model version {version} is active: switch to another one first")
    info = lib.model(version)
    with lib.transaction() as c:
        c.execute("DELETE FROM embeddings WHERE model_id = ?", (version,))
        c.execute("DELETE FROM models WHERE id = ?", (version,))
    if info.path and Path(info.path).parent.resolve() == models_dir().resolve():
        still_used = any(m.path == info.path for m in lib.models())
        if not still_used:
            Path(info.path).unlink(missing_ok=True)
            Path(info.path).with_suffix(".json").unlink(missing_ok=True)


def _missing_face_ids(lib: Library, model_id: int) -> list[int]:
    rows = lib.conn.execute(
        "SELECT f.id FROM faces f WHERE NOT EXISTS (SELECT 1 FROM embeddings e"
        " WHERE e.face_id = f.id AND e.model_id = ?) ORDER BY f.id",
        (model_id,),
    ).fetchall()
    return [r[0] for r in rows]


def embed_missing(
    lib: Library,
    model_id: int,
    state_dict: dict[str, torch.Tensor],
    *,
    device: str = "auto",
    progress: Callable[[AcceptProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    batch_size: int = 64,
) -> int:
    """Embed, from stored crops, every face lacking an embedding for this version.

    Batches are stored one transaction each, so a cancel or kill keeps what was
    done (harmless: the version is not active). Loops until no face is missing,
    to catch faces a concurrent scan added meanwhile. Returns faces embedded.
    """
    from faceapp.engine.embed import Embedder

    info = lib.model(model_id)
    device = config.resolve_device(device)
    embedder = Embedder(
        build_model(state_dict, device),
        device=device,
        preprocess=info.preprocess,
        flip=bool(info.metadata.get("flip", False)),
        centre=version_centre(info),
        batch_size=batch_size,
    )
    t0 = time.perf_counter()
    done = 0
    for _round in range(5):
        todo = _missing_face_ids(lib, model_id)
        if not todo:
            break
        total = done + len(todo)
        for start in range(0, len(todo), batch_size):
            _check_cancel(cancel)
            ids = todo[start : start + batch_size]
            vectors = embedder.embed(load_crops(lib, ids))
            lib.store_embeddings(model_id, ids, vectors)
            done += len(ids)
            elapsed = time.perf_counter() - t0
            eta = elapsed / done * (total - done)
            _emit(progress, AcceptProgress("embed", done, total, elapsed, eta))
    return done


def _calibrate(lib: Library, model_id: int, heldout_ids: Sequence[int]) -> tuple[float, str] | None:
    """Balanced-accuracy threshold on held-out confirmed pairs, from the stored embeddings."""
    found: dict[int, tuple[int, bytes]] = {}  # face -> (current person, vector)
    ids = [int(f) for f in heldout_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = lib.conn.execute(
            "SELECT f.id, f.person_id, e.vector FROM faces f JOIN embeddings e"
            f" ON e.face_id = f.id AND e.model_id = ? WHERE f.id IN ({','.join('?' * len(chunk))})"
            " AND f.person_id IS NOT NULL",
            (model_id, *chunk),
        )
        found.update((r[0], (r[1], r[2])) for r in rows)
    keep = [f for f in ids if f in found]  # labels may have changed since training
    if len(keep) < 3:
        return None
    emb = blob_to_matrix([found[f][1] for f in keep])
    lab = np.array([found[f][0] for f in keep])
    d, same = _pair_distances(emb, lab)
    if same.sum() < MIN_CALIBRATION_SAME_PAIRS or same.all():
        return None
    threshold, accuracy = balanced_threshold(d, same)
    return threshold, (
        f"calibrated on {int(same.sum())} same / {int((~same).sum())} different held-out"
        f" confirmed pairs (balanced accuracy {accuracy:.3f})"
    )


def accept(
    lib: Library,
    result: FinetuneResult,
    *,
    progress: Callable[[AcceptProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    activate: bool = True,
    device: str = "auto",
    embed_batch_size: int = 64,
) -> AcceptReport:
    """Make a trained model a new version: save, re-embed all faces, calibrate, switch.

    Order matters for crash safety: the weights file is complete (fsync +
    rename) before the row exists; the row is 'building' until every face has an
    embedding; only then is it marked 'ready' and made active
    (``Library.set_active_model`` refuses anything else). A cancel removes the
    half-built version; a kill leaves it 'building' (never active) for
    :func:`cleanup_incomplete`, which this function runs first.
    """
    if result.state_dict is None:
        raise FinetuneError("this fine-tuning run has no model to accept (discarded or cancelled)")
    t0 = time.perf_counter()
    cleanup_incomplete(lib)
    _emit(progress, AcceptProgress("save", 0, 1, 0.0, None))
    base = lib.model(result.base_model_id)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    metadata = {
        "base_model": base.id,
        "base_sha256": base.sha256,
        "base_source": base.source,
        "random_weights": base.source == "random-dev" or bool(base.metadata.get("random_weights")),
        "flip": result.flip,
        "centred": result.centre is not None,
        "centre": None if result.centre is None else [float(x) for x in result.centre],
        "people": result.plan.get("people"),
        "train_faces": result.plan.get("train_faces"),
        "heldout_faces": result.plan.get("heldout_faces"),
        "before": result.before.as_dict() if result.before else None,
        "after": result.after.as_dict() if result.after else None,
        "improved": result.improved,
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "train_seconds": round(result.seconds, 1),
        "options": asdict(result.options),
        "created": stamp,
    }
    path, sha = save_weights(result.state_dict, metadata)
    name = f"fine-tuned {stamp} ({result.plan.get('people')} people)"
    if metadata["random_weights"]:
        name += " [random dev weights]"
    model_id = lib.add_model(
        name=name,
        source="finetuned",
        origin=f"fine-tuned from version {base.id} ({base.source}, {base.sha256[:12]})",
        sha256=sha,
        path=str(path),
        preprocess=result.preprocess,
        threshold=base.threshold,
        threshold_source=f"inherited from version {base.id}",
        status="building",
        metadata={
            **metadata,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
        },
    )

    try:
        n = embed_missing(
            lib,
            model_id,
            result.state_dict,
            device=device,
            progress=progress,
            cancel=cancel,
            batch_size=embed_batch_size,
        )
        _check_cancel(cancel)
        _emit(progress, AcceptProgress("calibrate", n, n, time.perf_counter() - t0, None))
        calibrated = _calibrate(lib, model_id, result.heldout_ids)
        threshold, source = calibrated or (
            base.threshold,
            f"inherited from version {base.id} (too few held-out pairs to calibrate)",
        )
        lib.update_model(
            model_id,
            threshold=threshold,
            threshold_source=source,
            status="ready",
            metadata={**metadata, "threshold_calibrated": calibrated is not None},
        )
        if activate:
            _emit(progress, AcceptProgress("switch", n, n, time.perf_counter() - t0, None))
            for _attempt in range(3):  # a concurrent scan may have added faces meanwhile
                try:
                    lib.set_active_model(model_id)
                    break
                except LibraryError:
                    n += embed_missing(lib, model_id, result.state_dict, device=device)
            else:
                lib.set_active_model(model_id)
    except Cancelled:
        remove_version(lib, model_id)
        return AcceptReport(None, False, True, None, None, 0, time.perf_counter() - t0, None)
    except BaseException:
        with contextlib.suppress(Exception):
            remove_version(lib, model_id)
        raise
    return AcceptReport(
        model_id, activate, False, threshold, source, n, time.perf_counter() - t0, str(path)
    )


def versions(lib: Library) -> list[VersionInfo]:
    """Every model version of the library, oldest first, with how complete it is."""
    active = lib.active_model()
    total = lib.conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    counts = dict(
        lib.conn.execute("SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id").fetchall()
    )
    out = []
    for m in lib.models():
        file_ok = None
        if m.path:
            file_ok = Path(m.path).is_file()
        out.append(
            VersionInfo(
                id=m.id,
                name=m.name,
                source=m.source,
                status=m.status,
                active=active is not None and active.id == m.id,
                threshold=m.threshold,
                threshold_source=m.threshold_source,
                embedded_faces=int(counts.get(m.id, 0)),
                total_faces=int(total),
                path=m.path,
                file_ok=file_ok,
                metadata=m.metadata,
            )
        )
    return out


def use_model(
    lib: Library,
    version: int,
    *,
    progress: Callable[[AcceptProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    device: str = "auto",
) -> ModelInfo:
    """Make an earlier (or any ready) version active again.

    Faces added since that version was active get embedded with it first (from
    their crops), so the switch is complete; its weights must still be on disk
    with the same checksum. A cancel leaves the current version active.
    """
    info = lib.model(version)
    if info.status != "ready":
        raise FinetuneError(f"model version {version} is not ready ({info.status})")
    if _missing_face_ids(lib, version):
        state = model_state_dict(info)
        try:
            embed_missing(lib, version, state, device=device, progress=progress, cancel=cancel)
        except Cancelled:
            return lib.active_model() or info
    elif info.path:
        model_state_dict(info)  # checks the file is there and unchanged
    lib.set_active_model(version)
    return lib.model(version)


def options_from(**overrides: Any) -> FinetuneOptions:
    """Defaults with some fields replaced, ignoring None values (for CLI and GUI forms)."""
    return replace(FinetuneOptions(), **{k: v for k, v in overrides.items() if v is not None})
