"""What fine-tuning trains on, and how: the options and the plan shown before Start.

Training data are the stored crops of confirmed faces (people with at least two),
split per person into a training part and a held-out part that measures progress.
Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from faceapp.engine.library import Library, ModelInfo
from faceapp.engine.pair_metrics import FAR_TARGET
from faceapp.errors import FaceAppError

ALPHA = 0.2  # FaceNet's triplet margin (squared distance), used by engine/triplet.py
MINING = ("semihard", "batch-hard")  # triplet mining strategies, see engine/triplet.py
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


def options_from(**overrides: Any) -> FinetuneOptions:
    """Defaults with some fields replaced, ignoring None values (for CLI and GUI forms)."""
    return replace(FinetuneOptions(), **{k: v for k, v in overrides.items() if v is not None})
