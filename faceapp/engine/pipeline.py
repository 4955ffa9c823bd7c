"""Scan: folder -> decoded images -> faces -> embeddings -> library.

The scan runs in four stages that can also run apart (the distributed scan runs
decode and analyze on other machines): plan (:mod:`scan_plan`: which files need
reading), decode (:mod:`scan_decode`: a thread pool ahead of the networks), analyze
(:class:`Analyzer` through :mod:`scan_analyze`) and store (:mod:`scan_store`: the one
library writer). :func:`scan` composes them on this machine. This module also
resolves the model version a library's faces are embedded with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceapp import config
from faceapp.engine import scan_decode
from faceapp.engine import weights as weights_mod
from faceapp.engine.detect import Detector, FaceBox
from faceapp.engine.embed import Embedder
from faceapp.engine.images import DecodedImage, load_image
from faceapp.engine.library import Library, LibraryError, ModelInfo
from faceapp.engine.scan_analyze import analyze_batch
from faceapp.engine.scan_decode import Decoded, DecodeStream, decode_file
from faceapp.engine.scan_plan import ScanReport, plan_scan
from faceapp.engine.scan_store import ScanProgress, ScanStore

BATCH = 4  # photos per detection/embedding batch


@dataclass(frozen=True)
class AnalyzedFace:
    face: FaceBox
    crop: np.ndarray  # uint8 (160, 160, 3)
    embedding: np.ndarray  # float32 (512,)


class Analyzer:
    """Detector + embedder for one model version: what scan and verify share."""

    def __init__(
        self,
        detector: Detector,
        embedder: Embedder,
        *,
        threshold: float,
        threshold_source: str,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.threshold = threshold  # squared L2 on unit vectors: below means same person
        self.threshold_source = threshold_source

    @classmethod
    def from_weights(
        cls, loaded: weights_mod.LoadedWeights, device: str = "auto", *, flip: bool = False
    ) -> Analyzer:
        device = config.resolve_device(device)
        model = weights_mod.build_model(loaded, device)
        embedder = Embedder(
            model, device=device, preprocess=loaded.preprocess, flip=flip, centre=loaded.centre
        )
        return cls(
            Detector(device=device),
            embedder,
            threshold=loaded.threshold,
            threshold_source=loaded.threshold_source,
        )

    def analyze(self, images: list[DecodedImage]) -> list[list[AnalyzedFace]]:
        """Faces of several decoded photos, detected and embedded in batches."""
        boxes = self.detector.detect(images)
        crops = [self.detector.crops(img, faces) for img, faces in zip(images, boxes, strict=True)]
        flat = [c for c in crops if len(c)]
        vectors = self.embedder.embed(np.concatenate(flat)) if flat else np.zeros((0, 512))
        out, start = [], 0
        for faces, photo_crops in zip(boxes, crops, strict=True):
            n = len(faces)
            out.append(
                [
                    AnalyzedFace(f, c, v)
                    for f, c, v in zip(faces, photo_crops, vectors[start : start + n], strict=True)
                ]
            )
            start += n
        return out

    def analyze_path(self, path: Path) -> tuple[DecodedImage, list[AnalyzedFace]]:
        decoded = load_image(Path(path))
        return decoded, self.analyze([decoded])[0]


# -- libraries ----------------------------------------------------------------------------


def ensure_model(lib: Library, loaded: weights_mod.LoadedWeights) -> ModelInfo:
    """The library's active model version, registering ``loaded`` in a new library.

    A library keeps one embedding space: weights other than the ones its faces were
    embedded with are an error, not a silent mix.
    """
    active = lib.active_model()
    if active is None:
        model_id = lib.add_model(
            name=f"{loaded.source} base",
            source=loaded.source,
            origin=str(loaded.origin),
            sha256=loaded.sha256,
            preprocess=loaded.preprocess,
            threshold=loaded.threshold,
            threshold_source=loaded.threshold_source,
            metadata={"flip": False, "centred": loaded.centre is not None},
        )
        lib.set_active_model(model_id)
        return lib.model(model_id)
    if active.sha256 != loaded.sha256:
        raise LibraryError(
            f"this library was embedded with {active.source} weights ({active.sha256[:12]}),"
            f" not with {loaded.source} weights ({loaded.sha256[:12]}); choose the original"
            " weights file with --weights or switch versions with `faceapp models use`"
        )
    return active


def _base_weights(active: ModelInfo | None, weights_path: Path | None) -> weights_mod.LoadedWeights:
    """The base weights a library was embedded with, looked up by their source first.

    The general resolution order prefers VGGFace2 once it is in the hub cache: a
    library embedded offline (CASIA-WebFace) must keep its own weights then, not be
    refused for a checksum mismatch, and must not probe the network for weights it
    will not use.
    """
    if weights_path is None and active is not None:
        found = None
        if active.source == "casia-webface":
            found = weights_mod.offline_weights()
        elif active.source == "vggface2":
            found = weights_mod.vggface2_weights(allow_download=True)
        elif active.source == "user" and Path(active.origin).is_file():
            found = weights_mod.resolve_weights(Path(active.origin))
        if found is not None and found.sha256 == active.sha256:
            return found
    return weights_mod.resolve_weights(weights_path)


def library_weights(lib: Library, weights_path: Path | None = None) -> weights_mod.LoadedWeights:
    """The weights of the library's active version (a fine-tuned file or the base weights)."""
    active = lib.active_model()
    if active is None or not active.path:
        loaded = _base_weights(active, weights_path)
        active = ensure_model(lib, loaded)
        return dataclasses.replace(
            loaded, threshold=active.threshold, threshold_source=active.threshold_source
        )
    path = Path(active.path)
    state_dict = weights_mod.load_state_dict_file(path)
    with open(path, "rb") as fh:  # the file the faces were embedded with, not a replaced one
        if hashlib.file_digest(fh, "sha256").hexdigest() != active.sha256:
            raise LibraryError(
                f"the weights file of model version {active.id} changed on disk ({path});"
                " its faces were embedded with other weights: switch versions with"
                " `faceapp models use`"
            )
    centre = active.metadata.get("centre")  # fine-tuned versions: the centre they trained with
    return weights_mod.LoadedWeights(
        state_dict=state_dict,
        source=active.source,
        origin=active.origin,
        sha256=active.sha256,
        preprocess=active.preprocess,
        threshold=active.threshold,
        threshold_source=active.threshold_source,
        file=path,
        centre=None if centre is None else np.asarray(centre, np.float32),
    )


def analyzer_for_library(
    lib: Library, device: str = "auto", weights_path: Path | None = None
) -> Analyzer:
    """An analyzer for the library's active model version, with its calibrated threshold."""
    return Analyzer.from_weights(library_weights(lib, weights_path), device)


# -- scanning -----------------------------------------------------------------------------


def scan(
    lib: Library,
    root: Path,
    analyzer: Analyzer,
    *,
    progress: Callable[[ScanProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    decode_workers: int = 2,
) -> ScanReport:
    """Bring the library up to date with the folder; only new or changed files are read."""
    t0 = time.perf_counter()
    plan = plan_scan(lib, root)
    store = ScanStore(lib, plan, progress=progress, started=t0)
    batch: list[Decoded] = []

    def held() -> int:
        return sum(d.pixels for d in batch)

    store.emit("")
    stream = DecodeStream(plan.todo, plan.moved_from, workers=decode_workers, held=held)
    try:
        while stream:
            if cancel is not None and cancel():
                plan.report.cancelled = True
                break
            item = stream.next()
            if store.take_move(item.rel, item.size, item.mtime_ns, item.content_hash):
                continue
            if item.image is None and item.error is None:  # a second copy of a moved photo
                item = decode_file(plan.on_disk[item.rel], item.rel)  # decoded fine before
            batch.append(item)
            if len(batch) >= BATCH or not stream or held() >= scan_decode.PREFETCH_PIXELS:
                store.store(analyze_batch(analyzer, store.not_stored(batch)))
                batch = []
        if batch and not plan.report.cancelled:
            store.store(analyze_batch(analyzer, store.not_stored(batch)))
    finally:
        stream.close()
    return store.finish()
