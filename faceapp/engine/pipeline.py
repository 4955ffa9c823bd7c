"""Scan: folder -> decoded images -> faces -> embeddings -> library.

The scan runs in four stages that can also run apart (the distributed scan runs
decode and analyze on other machines): plan (:mod:`scan_plan`: which files need
reading), decode (:mod:`scan_decode`: a thread pool ahead of the networks), analyze
(:class:`Analyzer` through :mod:`scan_analyze`) and store (:mod:`scan_store`: the one
library writer). :func:`scan` composes them on this machine. The model version a
library's faces are embedded with is resolved by :mod:`model_versions`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceapp import config
from faceapp.engine import face_tags, gpu_decode, inference, scan_decode
from faceapp.engine import photos as photos_mod
from faceapp.engine import weights as weights_mod
from faceapp.engine.detect import Detector, FaceBox
from faceapp.engine.embed import Embedder
from faceapp.engine.images import DecodedImage, load_image
from faceapp.engine.library import Library
from faceapp.engine.model_versions import active_weights
from faceapp.engine.scan_analyze import PhotoResult, analyze_batch
from faceapp.engine.scan_decode import Decoded, DecodeStream, decode_file
from faceapp.engine.scan_parallel import AnalysisPool
from faceapp.engine.scan_plan import ScanReport, plan_scan
from faceapp.engine.scan_store import ScanProgress, ScanStore

BATCH = inference.CPU_PHOTO_BATCH  # photos per batch of an analyzer without a plan


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
        self.plan = embedder.plan
        self.threshold = threshold  # squared L2 on unit vectors: below means same person
        self.threshold_source = threshold_source

    @classmethod
    def from_weights(
        cls, loaded: weights_mod.LoadedWeights, device: str = "auto", *, flip: bool = False
    ) -> Analyzer:
        plan = inference.choose(config.resolve_device(device))
        model = weights_mod.build_model(loaded, plan.device)
        embedder = Embedder(
            model, preprocess=loaded.preprocess, flip=flip, centre=loaded.centre, plan=plan
        )
        return cls(
            Detector(plan=plan),
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


def analyzer_for_library(
    lib: Library, device: str = "auto", weights_path: Path | None = None
) -> Analyzer:
    """An analyzer for the library's active model version, with its calibrated threshold."""
    return Analyzer.from_weights(active_weights(lib, weights_path), device)


# -- scanning -----------------------------------------------------------------------------


def scan(
    lib: Library,
    root: Path,
    analyzer: Analyzer,
    *,
    progress: Callable[[ScanProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    decode_workers: int | None = None,
    only: Container[str] | None = None,
) -> ScanReport:
    """Bring the library up to date with the folder; only new or changed files are read.

    ``only``: read just these files (relative paths), even unchanged ones the library
    holds as unreadable: "Try again" for the scan problems (see :func:`retry`).
    Decode workers and photos per batch come from the analyzer's inference plan.
    """
    t0 = time.perf_counter()
    how: inference.InferencePlan | None = getattr(analyzer, "plan", None)  # doubles have none
    per_batch = how.photo_batch if how else BATCH
    decode_workers = decode_workers or (how.decode_workers if how else 2)
    plan = plan_scan(lib, root, only)
    tags = face_tags.TagImporter(lib, analyzer, plan.root, plan.report.tags)
    store = ScanStore(lib, plan, progress=progress, started=t0, tags=tags)
    pool: AnalysisPool[list[PhotoResult]] = AnalysisPool(
        lambda b: analyze_batch(analyzer, b), how.analyze_workers if how else 1
    )
    batch: list[Decoded] = []

    def held() -> int:
        return sum(d.pixels for d in batch) + pool.pixels()

    def analyze(items: list[Decoded]) -> None:
        if pool.full:  # the oldest batch is stored before another one starts
            store.store(pool.take())
        pool.put(store.not_stored(items))

    store.emit("")
    load = gpu_decode.loader(how.device) if how else None
    stream = DecodeStream(plan.todo, plan.moved_from, workers=decode_workers, held=held, load=load)
    with how.scanning() if how else contextlib.nullcontext():
        try:
            while stream:
                if cancel is not None and cancel():
                    plan.report.cancelled = True
                    break
                item = stream.next()
                if store.take_move(item.rel, item.size, item.mtime_ns, item.content_hash):
                    continue
                if item.image is None and item.error is None:  # a second copy of a moved photo
                    item = decode_file(plan.on_disk[item.rel], item.rel, load=load)  # read before
                batch.append(item)
                if len(batch) >= per_batch or not stream or held() >= scan_decode.PREFETCH_PIXELS:
                    analyze(batch)
                    batch = []
            if batch and not plan.report.cancelled:
                analyze(batch)
            for results in pool.drain():  # analysed already, also when cancelled: kept
                store.store(results)
        finally:
            stream.close()
            pool.close()
    if not plan.report.cancelled:
        photos_mod.fill_missing_dates(lib, plan.root)  # photos stored before dates were kept
    return store.finish()


def retry(
    lib: Library,
    root: Path,
    analyzer: Analyzer,
    paths: Collection[str] | None = None,
    **kwargs: Any,
) -> ScanReport:
    """Read again the files a scan could not use (all of them, or ``paths``).

    A file that now reads is stored with its faces and leaves the problems list; one
    that still fails keeps its (possibly new) reason.
    """
    wanted = {p.path for p in photos_mod.problems(lib)}
    if paths is not None:
        wanted &= set(paths)
    if not wanted:
        return ScanReport()
    return scan(lib, root, analyzer, only=wanted, **kwargs)
