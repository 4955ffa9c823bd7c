"""Fine-tune the embedder on the people the user confirmed (FaceNet triplet loss).

The API the GUI dialog and the CLI share::

    p = plan(lib)                                 # who and what will be trained on
    result = train(lib, options, progress=..., cancel=...)   # nothing is written
    report = accept(lib, result, progress=..., cancel=...)   # new version, re-embed, switch
    discard(result)                               # or: forget it, the library is untouched

Versions are kept by :mod:`model_versions`; the options and the plan are in
:mod:`finetune_plan`, the training loop in :mod:`training`, the network in
:mod:`network`.

Training data are the stored 160x160 crops of confirmed faces (people with at
least two), split per person into a training part and a held-out part that
measures progress (verification accuracy and VAL at FAR = 1e-3 on held-out
pairs). Only the last layers learn (see ``FinetuneOptions.trainable``); the
frozen trunk is run once per face and augmented view, and its output is cached,
so every epoch costs only the small head.

``accept`` writes the weights atomically under ``data_dir()/models`` (with
sha256 and a metadata sidecar), registers a model row with status
``building``, re-embeds every face from its stored crop, recalibrates the
threshold on held-out confirmed pairs, marks the row ``ready`` and only then
activates it (which re-clusters, see :func:`model_versions.activate`). A crash
or kill anywhere before the switch leaves the old version active with all of
its embeddings; the half-built version is cleaned up by the next ``accept``
(or ``model_versions.remove_version``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from faceapp import config
from faceapp.engine import backup
from faceapp.engine import model_versions as mv
from faceapp.engine.finetune_plan import (
    TRAINABLE,
    FinetuneError,
    FinetuneOptions,
    FinetunePlan,
    plan,
)
from faceapp.engine.library import Library
from faceapp.engine.library_photos import blob_to_matrix
from faceapp.engine.network import STAGES, build_model
from faceapp.engine.pair_metrics import HeldoutMetrics, balanced_threshold, pair_distances
from faceapp.engine.progress import Cancelled, VersionProgress, check_cancel, emit
from faceapp.engine.training import EpochRecord, TrainProgress, fit_head, prepare_features

if TYPE_CHECKING:
    from faceapp.engine.cluster import ClusterParams, ClusterSummary

MIN_CALIBRATION_SAME_PAIRS = 10  # fewer held-out same-person pairs: keep the old threshold


@dataclass
class RunSetup:
    """What a fine-tuning run is fixed to before training starts (a part of its result)."""

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


@dataclass
class FinetuneResult(RunSetup):
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
class AcceptReport:
    model_id: int | None  # None when cancelled
    activated: bool
    cancelled: bool
    threshold: float | None
    threshold_source: str | None
    faces_embedded: int
    seconds: float
    path: str | None
    clusters: ClusterSummary | None = None  # the re-clustering that followed the switch

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "clusters"}
        out["clusters"] = None if self.clusters is None else self.clusters.clusters
        return out


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
        state, centre = mv.model_state_dict(base_info), mv.version_centre(base_info)
    gen = torch.Generator().manual_seed(options.seed)
    torch.manual_seed(options.seed)  # dropout, if enabled (train() forks the global RNG)
    model = build_model(state, device)
    cut = STAGES.index(TRAINABLE[options.trainable])
    setup = RunSetup(
        options=options,
        plan=the_plan.as_dict(),
        base_model_id=base_info.id,
        base_sha256=base_info.sha256,
        base_source=base_info.source,
        preprocess=base_info.preprocess,
        flip=flip,
        centre=None if centre is None else np.asarray(centre, np.float32),
        threshold=base_info.threshold,
        heldout_ids=list(the_plan.heldout_ids),
        device=device,
    )
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
            **vars(setup),
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
        **vars(setup),
    )


def discard(result: FinetuneResult) -> None:
    """Forget a trained model. The library was never written to, so nothing else happens."""
    result.state_dict = None


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
    d, same = pair_distances(emb, lab)
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
    progress: Callable[[VersionProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    activate: bool = True,
    params: ClusterParams | None = None,
    device: str = "auto",
    embed_batch_size: int = 64,
) -> AcceptReport:
    """Make a trained model a new version: save, re-embed all faces, calibrate, activate.

    Order matters for crash safety: the weights file is complete (fsync +
    rename) before the row exists; the row is 'building' until every face has an
    embedding; only then is it marked 'ready' and activated with
    :func:`model_versions.activate`, which re-clusters with ``params`` (the CLI and
    the GUI alike). A cancel removes the half-built version; a kill leaves it
    'building' (never active) for :func:`model_versions.cleanup_incomplete`, which
    this function runs first.
    """
    if result.state_dict is None:
        raise FinetuneError("this fine-tuning run has no model to accept (discarded or cancelled)")
    t0 = time.perf_counter()
    mv.cleanup_incomplete(lib)
    backup.backup_before(lib, "fine-tune")
    emit(progress, VersionProgress("save", 0, 1, 0.0, None))
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
        "library": str(lib.path.expanduser().resolve()),  # whose orphan it is, if killed
    }
    path, sha = mv.save_weights(result.state_dict, metadata)
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
        metadata={**metadata, **mv.building_metadata()},
    )
    clusters = None
    try:
        n = mv.embed_missing(
            lib,
            model_id,
            result.state_dict,
            device=device,
            progress=progress,
            cancel=cancel,
            batch_size=embed_batch_size,
        )
        check_cancel(cancel)
        emit(progress, VersionProgress("calibrate", n, n, time.perf_counter() - t0, None))
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
            done = mv.activate(
                lib,
                model_id,
                params=params,
                progress=progress,
                cancel=cancel,
                device=device,
                state_dict=result.state_dict,
            )
            if not done.activated:
                raise Cancelled()
            n += done.faces_embedded
            clusters = done.clusters
    except Cancelled:
        mv.remove_version(lib, model_id)
        return AcceptReport(None, False, True, None, None, 0, time.perf_counter() - t0, None)
    except BaseException:
        with contextlib.suppress(Exception):
            mv.remove_version(lib, model_id)
        raise
    return AcceptReport(
        model_id,
        activate,
        False,
        threshold,
        source,
        n,
        time.perf_counter() - t0,
        str(path),
        clusters,
    )
