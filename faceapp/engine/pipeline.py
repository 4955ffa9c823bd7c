"""Scan: folder -> decoded images -> faces -> embeddings -> library.

Decoding (Pillow releases the GIL) runs in a small thread pool ahead of the
model work, so the CPU decodes the next photos while the networks run. Each
photo is stored in its own transaction: a cancelled or killed scan keeps what
it finished and the next scan resumes with the files not yet stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from collections import deque
from collections.abc import Callable, Container
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from faceapp import config
from faceapp.engine import weights as weights_mod
from faceapp.engine.detect import Detector, FaceBox
from faceapp.engine.embed import Embedder
from faceapp.engine.images import DecodedImage, ImageError, discover, load_image
from faceapp.engine.library import Library, LibraryError, ModelInfo, NewFace

LAST_LIBRARY_FILE = "last_library"
PREFETCH = 8  # decoded photos kept ahead of the model work
BATCH = 4  # photos per detection/embedding batch


@dataclass(frozen=True)
class ScanProgress:
    done: int
    total: int
    faces: int
    current: str
    elapsed: float
    eta: float | None


@dataclass
class ScanReport:
    photos: int = 0  # photos read and stored by this scan (new or changed)
    faces: int = 0  # faces found in them
    skipped_unchanged: int = 0
    moved: int = 0
    missing: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False

    def as_dict(self) -> dict:
        return {
            "photos": self.photos,
            "faces": self.faces,
            "skipped_unchanged": self.skipped_unchanged,
            "moved": self.moved,
            "missing": self.missing,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "seconds": round(self.seconds, 2),
            "cancelled": self.cancelled,
        }


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
        cls, loaded: weights_mod.LoadedWeights, device: str = "auto", *, flip: bool = True
    ) -> Analyzer:
        device = config.resolve_device(device)
        model = weights_mod.build_model(loaded, device)
        embedder = Embedder(model, device=device, preprocess=loaded.preprocess, flip=flip)
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


def crop_to_jpeg(crop: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def file_hash(path: Path) -> str:
    """Content hash: finds a photo again after it was moved or renamed."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- libraries ----------------------------------------------------------------------------


def open_library(folder: Path | None = None, library_path: Path | None = None) -> Library:
    """The library for a folder (default location keyed by the folder) or an explicit file.

    With neither, the most recently used library: commands such as ``faces`` then
    work on what the last ``scan`` produced.
    """
    last = config.data_dir() / LAST_LIBRARY_FILE
    if library_path is None and folder is not None:
        library_path = config.default_library_path(folder)
    if library_path is None:
        if not last.exists():
            raise LibraryError("no library yet: scan a folder first or pass --library PATH")
        library_path = Path(last.read_text().strip())
    library_path = Path(library_path).expanduser()
    if folder is None and not library_path.exists():
        raise LibraryError(f"no library at {library_path}")
    lib = Library(library_path, root=folder)
    last.write_text(str(library_path.resolve()))
    return lib


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


def library_weights(lib: Library, weights_path: Path | None = None) -> weights_mod.LoadedWeights:
    """The weights of the library's active version (a fine-tuned file or the base weights)."""
    active = lib.active_model()
    if active is None or not active.path:
        loaded = weights_mod.resolve_weights(weights_path)
        active = ensure_model(lib, loaded)
        return dataclasses.replace(
            loaded, threshold=active.threshold, threshold_source=active.threshold_source
        )
    return weights_mod.LoadedWeights(
        state_dict=weights_mod.load_state_dict_file(Path(active.path)),
        source=active.source,
        origin=active.origin,
        sha256=active.sha256,
        preprocess=active.preprocess,
        threshold=active.threshold,
        threshold_source=active.threshold_source,
    )


def analyzer_for_library(
    lib: Library, device: str = "auto", weights_path: Path | None = None
) -> Analyzer:
    """An analyzer for the library's active model version, with its calibrated threshold."""
    return Analyzer.from_weights(library_weights(lib, weights_path), device)


# -- scanning -----------------------------------------------------------------------------


@dataclass
class _Decoded:
    rel: str
    size: int
    mtime_ns: int
    content_hash: str
    image: DecodedImage | None = None
    error: str | None = None


def _decode(path: Path, rel: str, known_hashes: Container[str]) -> _Decoded:
    """Hash and decode one file; a file whose content the library knows is not decoded."""
    try:
        stat = path.stat()
        content = file_hash(path)
    except OSError as exc:
        return _Decoded(rel, 0, 0, "", error=f"cannot read: {exc}")
    item = _Decoded(rel, stat.st_size, stat.st_mtime_ns, content)
    if content in known_hashes:
        return item
    try:
        item.image = load_image(path)
    except ImageError as exc:
        item.error = str(exc)
    except Exception as exc:  # a decoder bug must cost one file, not the scan
        item.error = f"cannot decode ({type(exc).__name__}: {exc})"
    return item


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


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
    root = Path(root).expanduser().resolve()
    report = ScanReport()
    states = lib.photo_states()
    on_disk: dict[str, Path] = {_relative(p, root): p for p in discover(root)}

    vanished = [rel for rel, s in states.items() if rel not in on_disk and s.status == "ok"]
    lib.mark_missing(vanished)
    moved_from = {
        s.content_hash: s
        for rel, s in states.items()
        if s.content_hash and (rel not in on_disk or rel in vanished)
    }
    todo: list[tuple[str, Path]] = []
    for rel, path in on_disk.items():
        state = states.get(rel)
        try:
            stat = path.stat()
        except OSError as exc:
            report.errors.append((rel, f"cannot read: {exc}"))
            continue
        unchanged = (
            state is not None
            and state.status == "ok"
            and state.size == stat.st_size
            and state.mtime_ns == stat.st_mtime_ns
        )
        if unchanged:
            report.skipped_unchanged += 1
        elif (
            state is not None
            and state.status == "missing"
            and (state.size, state.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        ):
            lib.move_photo(state.id, rel, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
            report.skipped_unchanged += 1  # came back: faces and labels were kept
        else:
            todo.append((rel, path))

    active = lib.active_model()
    if active is None:
        raise LibraryError("the library has no model version yet (see pipeline.ensure_model)")
    model_id = active.id
    found_again: set[int] = set()
    done = 0

    def emit(current: str) -> None:
        if progress is None:
            return
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (len(todo) - done) if done else None
        progress(ScanProgress(done, len(todo), report.faces, current, elapsed, eta))

    def store(batch: list[_Decoded]) -> None:
        nonlocal done
        good = [b for b in batch if b.image is not None]
        try:
            results = analyzer.analyze([b.image for b in good]) if good else []
        except Exception:  # isolate the photo that broke the batch
            results = [_analyze_one(analyzer, b) for b in good]
        for item, faces in zip(good, results, strict=True):
            if faces is None:
                continue
            lib.store_photo(
                item.rel,
                size=item.size,
                mtime_ns=item.mtime_ns,
                width=item.image.width,
                height=item.image.height,
                content_hash=item.content_hash,
                model_id=model_id,
                faces=[
                    NewFace(
                        box=tuple(map(float, a.face.box)),
                        landmarks=np.asarray(a.face.landmarks, float).round(2).tolist(),
                        prob=float(a.face.prob),
                        crop_jpeg=crop_to_jpeg(a.crop),
                        embedding=a.embedding,
                    )
                    for a in faces
                ],
            )
            report.photos += 1
            report.faces += len(faces)
        for item in batch:
            if item.error is not None:
                lib.store_photo_error(
                    item.rel, size=item.size, mtime_ns=item.mtime_ns, reason=item.error
                )
                report.errors.append((item.rel, item.error))
        done += len(batch)
        emit(batch[-1].rel)

    def _analyze_one(an: Analyzer, item: _Decoded) -> list[AnalyzedFace] | None:
        try:
            return an.analyze([item.image])[0]
        except Exception as exc:
            item.error = f"face detection failed ({type(exc).__name__}: {exc})"
            item.image = None
            return None

    emit("")
    with ThreadPoolExecutor(max_workers=decode_workers, thread_name_prefix="decode") as pool:
        pending: deque[Future[_Decoded]] = deque()
        queue = iter(todo)

        def refill() -> None:
            while len(pending) < PREFETCH:
                nxt = next(queue, None)
                if nxt is None:
                    return
                rel, path = nxt
                pending.append(pool.submit(_decode, path, rel, moved_from))

        refill()
        batch: list[_Decoded] = []
        while pending:
            if cancel is not None and cancel():
                report.cancelled = True
                for f in pending:
                    f.cancel()
                break
            item = pending.popleft().result()
            refill()
            previous = moved_from.get(item.content_hash)
            if previous is not None and previous.id not in found_again:
                found_again.add(previous.id)
                lib.move_photo(previous.id, item.rel, size=item.size, mtime_ns=item.mtime_ns)
                report.moved += 1
                done += 1
                emit(item.rel)
                continue
            if item.image is None and item.error is None:  # a second copy of a moved photo
                item = _decode(on_disk[item.rel], item.rel, ())
            batch.append(item)
            if len(batch) >= BATCH or not pending:
                store(batch)
                batch = []
        if batch and not report.cancelled:
            store(batch)
    report.missing = len(vanished) - len(found_again)
    report.seconds = time.perf_counter() - t0
    return report
