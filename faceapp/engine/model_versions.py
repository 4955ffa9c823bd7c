"""Model versions of a library, base and fine-tuned: resolve, register, activate, remove.

A library keeps one embedding space per version: the ``models`` rows, each with
the checksum of its weights, its preprocessing, centre and calibrated threshold,
and one embedding per face. The active version is what scanning, clustering,
suggestions and verification use. This module is the one place that

- resolves a version's weights (:func:`version_weights`, :func:`active_weights`):
  a fine-tuned file checked against its checksum, or the base weights looked up by
  their source, never silently other ones;
- registers versions (:func:`register_base`, idempotent; :func:`save_weights` for
  fine-tuned files, written atomically);
- activates one (:func:`activate`: embeds faces it lacks, switches, re-clusters:
  the CLI and the GUI call the same function);
- removes one (:func:`remove_version`, :func:`cleanup_incomplete`).

Listing and removing import no torch; embedding imports it when needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceapp import config
from faceapp.engine.files import process_temp_path, sha256_file, write_atomic
from faceapp.engine.library import Library, LibraryError, ModelInfo
from faceapp.engine.orphans import clean_finetune_orphans, models_dir, pid_alive
from faceapp.engine.progress import Cancelled, VersionProgress, check_cancel, emit

if TYPE_CHECKING:
    import torch

    from faceapp.engine.cluster import ClusterParams, ClusterSummary
    from faceapp.engine.weights import LoadedWeights

STALE_FOREIGN_BUILD_S = 24 * 3600  # a 'building' version from another machine: stale after


class ModelError(LibraryError):
    """A model version cannot be used, switched to or removed (missing or changed weights)."""


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

    @property
    def heldout(self) -> tuple[dict | None, dict | None]:
        """Held-out figures (before, after) of a fine-tuned version; (None, None) for a base."""
        return self.metadata.get("before"), self.metadata.get("after")

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


@dataclass(frozen=True)
class Activation:
    """What :func:`activate` did."""

    model: ModelInfo
    activated: bool  # False: cancelled, the previous version stays active
    faces_embedded: int
    clusters: ClusterSummary | None  # None when re-clustering was not asked for


# -- resolving weights ------------------------------------------------------------------


def _find_base(info: ModelInfo) -> LoadedWeights | None:
    """The base weights of a version, looked up by its source (as it was scanned with).

    The general resolution order prefers VGGFace2 once it is in the hub cache: a
    library embedded offline (CASIA-WebFace) must keep its own weights then.
    """
    from faceapp.engine import weights as weights_mod

    if info.source == "casia-webface":
        return weights_mod.offline_weights()
    if info.source == "vggface2":
        return weights_mod.vggface2_weights()  # downloaded only on request, never here
    if info.source == "user" and Path(info.origin).is_file():
        return weights_mod.resolve_weights(Path(info.origin))
    if info.source == "random-dev" and os.environ.get(weights_mod.RANDOM_ENV) == "1":
        return weights_mod.random_weights()
    return None


def model_state_dict(info: ModelInfo) -> dict[str, torch.Tensor]:
    """The weights of a version: its own file, or the base weights it came with.

    Raises :class:`ModelError` when the file is gone or changed, or when the weights
    found on this machine are not the ones the version was embedded with.
    """
    from faceapp.engine.state_dict import load_state_dict_file

    if not info.path:
        found = _find_base(info)
        if found is None:
            raise ModelError(
                f"the {info.source} weights of model version {info.id} are not on this machine"
            )
        if found.sha256 != info.sha256:
            raise ModelError(
                f"model version {info.id} uses {info.source} weights ({info.sha256[:12]}) but"
                f" other weights ({found.sha256[:12]}) were found on this machine"
            )
        return found.state_dict
    path = Path(info.path)
    if not path.is_file():
        raise ModelError(f"the weights of model version {info.id} are missing: {path}")
    if sha256_file(path) != info.sha256:
        raise ModelError(
            f"the weights file of model version {info.id} changed on disk ({path}); its faces"
            " were embedded with other weights: switch versions with `faceapp models use`"
        )
    return load_state_dict_file(path)


def version_centre(info: ModelInfo) -> np.ndarray | None:
    """The mean embedding a version's embeddings are centred on (None: not centred).

    Fine-tuned versions keep their base's centre in their metadata (training runs
    on centred embeddings); base versions use the one their weights come with.
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


def version_weights(info: ModelInfo) -> LoadedWeights:
    """Everything needed to embed faces with a version: weights, centre, threshold."""
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


def active_weights(lib: Library, weights_path: Path | None = None) -> LoadedWeights:
    """The weights of the library's active version, with its threshold.

    A new library registers the weights the general resolution order finds (or
    ``weights_path``) as its base version. Nothing is downloaded here (offline is
    the default); other weights than the version's are an error, not a mix.
    """
    from faceapp.engine import weights as weights_mod

    active = lib.active_model()
    if active is not None and active.path:
        return version_weights(active)
    loaded = None
    if weights_path is None and active is not None:
        found = _find_base(active)
        if found is not None and found.sha256 == active.sha256:
            loaded = found
    if loaded is None:
        loaded = weights_mod.resolve_weights(weights_path)
    active = register_base(lib, loaded)
    return replace(loaded, threshold=active.threshold, threshold_source=active.threshold_source)


# -- registering -------------------------------------------------------------------------


def register_base(lib: Library, loaded: LoadedWeights) -> ModelInfo:
    """The library's active version, registering ``loaded`` as the base of a new library.

    Idempotent and safe against a second process doing the same: one write
    transaction looks for the version first (by checksum, base rows only) and
    adds a row only when there is none.
    """
    with lib.transaction() as c:
        active = lib.active_model()
        if active is None:
            row = c.execute(
                "SELECT id FROM models WHERE sha256 = ? AND path IS NULL ORDER BY id LIMIT 1",
                (loaded.sha256,),
            ).fetchone()
            model_id = (
                int(row[0])
                if row
                else lib.add_model(
                    name=f"{loaded.source} base",
                    source=loaded.source,
                    origin=str(loaded.origin),
                    sha256=loaded.sha256,
                    preprocess=loaded.preprocess,
                    threshold=loaded.threshold,
                    threshold_source=loaded.threshold_source,
                    metadata={"flip": False, "centred": loaded.centre is not None},
                )
            )
            lib.set_active_model(model_id)
            return lib.model(model_id)
    if active.sha256 != loaded.sha256:
        raise ModelError(
            f"this library was embedded with {active.source} weights ({active.sha256[:12]}),"
            f" not with {loaded.source} weights ({loaded.sha256[:12]}); choose the original"
            " weights file with --weights (VGGFace2: `faceapp weights --download`) or switch"
            " versions with `faceapp models use`"
        )
    return active


def save_weights(state_dict: dict[str, torch.Tensor], metadata: dict) -> tuple[Path, str]:
    """Write a state dict (and a JSON sidecar) atomically; returns (path, sha256 of the file)."""
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    path = models_dir() / f"finetuned-{time.strftime('%Y%m%d-%H%M%S')}-{sha[:12]}.pt"
    write_atomic(path, data, temp=process_temp_path(path))  # orphans.py cleans up after a kill
    meta = {**metadata, "sha256": sha, "file": path.name, "pid": os.getpid()}
    sidecar = path.with_suffix(".json")
    write_atomic(sidecar, json.dumps(meta, indent=1).encode(), temp=process_temp_path(sidecar))
    return path, sha


def building_metadata() -> dict[str, Any]:
    """Who is building a version, so :func:`cleanup_incomplete` leaves a live build alone."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}


# -- listing and removing ------------------------------------------------------------------


def versions(lib: Library) -> list[VersionInfo]:
    """Every model version of the library, oldest first, with how complete it is."""
    active = lib.active_model()
    total = lib.conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    counts = dict(
        lib.conn.execute("SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id").fetchall()
    )
    return [
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
            file_ok=Path(m.path).is_file() if m.path else None,
            metadata=m.metadata,
        )
        for m in lib.models()
    ]


def cleanup_incomplete(lib: Library) -> list[int]:
    """Remove versions left 'building' by a run that died (its process is gone).

    Weights files of saves killed before their version was registered go too.
    """
    clean_finetune_orphans(lib)
    removed = []
    host = socket.gethostname()
    for info in lib.models():
        if info.status != "building":
            continue
        owner = info.metadata.get("pid")
        if info.metadata.get("host") == host:
            if isinstance(owner, int) and owner != os.getpid() and pid_alive(owner):
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
        raise ModelError(f"model version {version} is active: switch to another one first")
    info = lib.model(version)
    with lib.transaction() as c:
        c.execute("DELETE FROM embeddings WHERE model_id = ?", (version,))
        c.execute("DELETE FROM models WHERE id = ?", (version,))
    file = info.path
    if not file or Path(file).parent.resolve() != models_dir().resolve():
        return  # no weights file, or not one of ours
    if not any(m.path == file for m in lib.models()):
        Path(file).unlink(missing_ok=True)
        Path(file).with_suffix(".json").unlink(missing_ok=True)


# -- embedding and activating ----------------------------------------------------------------


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
    progress: Callable[[VersionProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    batch_size: int = 64,
) -> int:
    """Embed, from stored crops, every face lacking an embedding for this version.

    Batches are stored one transaction each, so a cancel or kill keeps what was
    done (harmless: the version is not active). Loops until no face is missing,
    to catch faces a concurrent scan added meanwhile. Returns faces embedded.
    """
    from faceapp.engine.embed import Embedder, load_crops
    from faceapp.engine.network import build_model

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
            check_cancel(cancel)
            ids = todo[start : start + batch_size]
            lib.store_embeddings(model_id, ids, embedder.embed(load_crops(lib, ids)))
            done += len(ids)
            elapsed = time.perf_counter() - t0
            eta = elapsed / done * (total - done)
            emit(progress, VersionProgress("embed", done, total, elapsed, eta))
    return done


def activate(
    lib: Library,
    version: int,
    *,
    params: ClusterParams | None = None,
    recluster: bool = True,
    progress: Callable[[VersionProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    device: str = "auto",
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Activation:
    """Make a ready version active, then re-cluster the faces in its embedding space.

    Faces added since the version was last active are embedded with it first (from
    their crops), so the switch is complete; its weights must still be on disk with
    the same checksum (``state_dict``: already loaded by the caller). A cancel
    before the switch leaves the current version active. Names and confirmed faces
    never change; only the automatic clusters are recomputed.
    """
    from faceapp.engine import cluster

    t0 = time.perf_counter()
    info = lib.model(version)
    if info.status != "ready":
        raise ModelError(f"model version {version} is not ready ({info.status})")
    embedded = 0
    try:
        for _attempt in range(3):  # a concurrent scan may add faces between embed and switch
            if _missing_face_ids(lib, version):
                state = state_dict if state_dict is not None else model_state_dict(info)
                embedded += embed_missing(
                    lib, version, state, device=device, progress=progress, cancel=cancel
                )
            elif info.path and state_dict is None:
                model_state_dict(info)  # checks the file is there and unchanged
            check_cancel(cancel)
            emit(progress, VersionProgress("switch", 0, 1, time.perf_counter() - t0, None))
            try:
                lib.set_active_model(version)
                break
            except LibraryError:
                if _attempt == 2:
                    raise
    except Cancelled:
        return Activation(lib.active_model() or info, False, embedded, None)
    summary = None
    if recluster:
        emit(progress, VersionProgress("cluster", 0, 1, time.perf_counter() - t0, None))
        summary = cluster.recluster(lib, params)
    return Activation(lib.model(version), True, embedded, summary)
