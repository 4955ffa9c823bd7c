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
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from faceapp import config
from faceapp.engine import weights as weights_mod
from faceapp.engine.detect import Detector, FaceBox
from faceapp.engine.embed import Embedder
from faceapp.engine.files import sha256_file
from faceapp.engine.images import DecodedImage, ImageError, discover, load_image
from faceapp.engine.library import Library, LibraryError, ModelInfo, NewFace, PhotoState

PREFETCH = 8  # decoded photos kept ahead of the model work
# ... and no more decoded pixels than this (~450 MB of RGB) waiting for the networks
# (queued or in the batch being filled): eight 200 MP scans would hold ~5 GB. Files
# still decoding count at the size of the largest recent photo; one photo always goes
# through.
PREFETCH_PIXELS = 150_000_000
BATCH = 4  # photos per detection/embedding batch
# One file's hash + decode. A decoder can be made to spin by a crafted file, and a
# stalled network share blocks a read; neither may hang the scan. Generous, so that a
# 200 MP TIFF on a slow share on a busy machine still gets through.
DECODE_TIME_LIMIT = 120.0
TIME_LIMIT_PREFIX = "took longer than"
TIME_LIMIT_REASON = TIME_LIMIT_PREFIX + " {:.0f} s to read and decode; skipped (damaged file?)"
NAME_NOT_UTF8 = "the file name is not valid UTF-8; rename the file to scan it"


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
    if sha256_file(path) != active.sha256:  # the file the faces were embedded with
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
        return _Decoded(rel, 0, 0, "", error=f"cannot read the file: {exc.strerror or exc}")
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


def _decoded_pixels(item: _Decoded | None) -> int:
    image = item.image if item is not None else None
    return image.image.width * image.image.height if image is not None else 0


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _storable(rel: str) -> bool:
    """SQLite text is UTF-8: a name made of other bytes (os.fsdecode surrogates) is not."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(rel: str) -> str:
    """A name that can be printed and stored in a report, undecodable bytes as \\xNN."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _Task:
    __slots__ = ("abandoned", "args", "finished", "fn", "future", "started")

    def __init__(self, fn: Callable[..., _Decoded], args: tuple) -> None:
        self.fn, self.args = fn, args
        self.future: Future[_Decoded] = Future()
        self.started: float | None = None
        self.finished = False
        self.abandoned = False


class _DecodePool:
    """Decoding threads with a time limit per file.

    A thread stuck in a decoder cannot be interrupted from Python. When a file
    exceeds the limit it is given up: a fresh thread takes the stuck one's place in
    the queue, and the stuck one, a daemon that exits once its decode returns,
    cannot keep the app from exiting.
    """

    def __init__(self, workers: int) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = max(1, workers)
        for _ in range(self._workers):
            self._spawn()

    def _spawn(self) -> None:
        threading.Thread(target=self._work, name="decode", daemon=True).start()

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            if not task.future.set_running_or_notify_cancel():
                continue
            task.started = time.monotonic()
            try:
                result = task.fn(*task.args)
            except BaseException as exc:  # handed to the waiting thread
                task.future.set_exception(exc)
            else:
                task.future.set_result(result)
            with self._lock:
                task.finished = True
                if task.abandoned:
                    return  # a replacement thread has taken this one's place

    def submit(self, fn: Callable[..., _Decoded], *args: object) -> _Task:
        task = _Task(fn, args)
        self._tasks.put(task)
        return task

    def result(self, task: _Task, limit: float) -> _Decoded | None:
        """The task's result, or None once it has run longer than ``limit`` seconds."""
        while True:
            try:
                return task.future.result(timeout=min(0.25, limit))
            except FutureTimeout:
                if task.started is None or time.monotonic() - task.started <= limit:
                    continue
                with self._lock:
                    if task.finished:
                        continue
                    task.abandoned = True
                self._spawn()
                return None

    def close(self) -> None:
        """Stop the threads once the queue is drained (never waits for a stuck one)."""
        for _ in range(self._workers):
            self._tasks.put(None)


def _float_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A detector box as plain floats, the form the library stores."""
    x1, y1, x2, y2 = map(float, box)
    return x1, y1, x2, y2


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
    on_disk: dict[str, Path] = {}

    def unreadable_folder(path: Path, reason: str) -> None:
        report.errors.append((_printable(_relative(path, root)), reason))

    for path in discover(root, on_error=unreadable_folder):
        rel = _relative(path, root)
        if _storable(rel):
            on_disk[rel] = path
        else:
            report.errors.append((_printable(rel), NAME_NOT_UTF8))

    vanished = [rel for rel, s in states.items() if rel not in on_disk and s.status == "ok"]
    lib.mark_missing(vanished)
    errors_before = dict(lib.photo_errors())
    todo: list[tuple[str, Path]] = []
    changed_at_path: set[str] = set()  # a known photo's file changed: edited, or replaced
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
            and state.status == "error"
            and (state.size, state.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
            and (reason := errors_before.get(rel, "")).startswith(TIME_LIMIT_PREFIX)
        ):
            report.errors.append((rel, reason))  # not worth another minutes-long wait
        elif (
            state is not None
            and state.status == "missing"
            and (state.size, state.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        ):
            lib.move_photo(state.id, rel, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
            report.skipped_unchanged += 1  # came back: faces and labels were kept
        else:
            todo.append((rel, path))
            if state is not None and state.content_hash:
                changed_at_path.add(rel)
    # Known photos whose content may now be under another name: their own file is gone
    # or holds something else (a swap or a renumbering reuses names).
    moved_from = {
        s.content_hash: s
        for rel, s in states.items()
        if s.content_hash and (rel not in on_disk or rel in changed_at_path)
    }

    def moved_here(previous: PhotoState, rel: str) -> bool:
        """Is this file ``previous`` itself, rather than a copy of it?"""
        own = on_disk.get(previous.path)
        if previous.path == rel or own is None:
            return True  # the same file (touched) or the original is gone
        try:
            return file_hash(own) != previous.content_hash  # the original was replaced
        except OSError:
            return True

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
        good = [(b, b.image) for b in batch if b.image is not None]
        results: list[list[AnalyzedFace] | None]
        try:
            results = list(analyzer.analyze([image for _, image in good])) if good else []
        except Exception:  # isolate the photo that broke the batch
            results = [_analyze_one(analyzer, b, image) for b, image in good]
        for (item, image), faces in zip(good, results, strict=True):
            if faces is None:
                continue
            lib.store_photo(
                item.rel,
                size=item.size,
                mtime_ns=item.mtime_ns,
                width=image.width,
                height=image.height,
                content_hash=item.content_hash,
                model_id=model_id,
                faces=[
                    NewFace(
                        box=_float_box(a.face.box),
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

    def _analyze_one(
        an: Analyzer, item: _Decoded, image: DecodedImage
    ) -> list[AnalyzedFace] | None:
        try:
            return an.analyze([image])[0]
        except Exception as exc:
            item.error = f"face detection failed ({type(exc).__name__}: {exc})"
            item.image = None
            return None

    def timed_out(rel: str) -> _Decoded:
        try:
            stat = on_disk[rel].stat()
            size, mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime_ns = 0, 0
        return _Decoded(rel, size, mtime_ns, "", error=TIME_LIMIT_REASON.format(DECODE_TIME_LIMIT))

    emit("")
    pool = _DecodePool(decode_workers)
    pending: deque[tuple[str, _Task]] = deque()
    batch: list[_Decoded] = []
    try:
        todo_iter = iter(todo)

        recent: deque[int] = deque(maxlen=PREFETCH)  # pixels of the last decoded photos

        def room() -> bool:
            """May one more file be decoded ahead of the networks?"""
            if not pending:
                return True  # one photo always goes through
            if len(pending) >= PREFETCH:
                return False
            done = [
                t.future.result() for _, t in pending if t.finished and not t.future.exception()
            ]
            decoding = len(pending) - len(done)
            if not recent and decoding >= decode_workers:
                return False  # no size known yet: do not queue blindly
            guess = decoding * max(recent, default=0)
            return sum(map(_decoded_pixels, done + batch)) + guess < PREFETCH_PIXELS

        def refill() -> None:
            while room():
                nxt = next(todo_iter, None)
                if nxt is None:
                    return
                rel, path = nxt
                pending.append((rel, pool.submit(_decode, path, rel, moved_from)))

        refill()
        while pending:
            if cancel is not None and cancel():
                report.cancelled = True
                break
            rel, task = pending.popleft()
            item = pool.result(task, DECODE_TIME_LIMIT) or timed_out(rel)
            recent.append(_decoded_pixels(item))
            refill()
            previous = moved_from.get(item.content_hash)
            if (
                previous is not None
                and previous.id not in found_again
                and moved_here(previous, item.rel)
            ):
                found_again.add(previous.id)
                lib.move_photo(previous.id, item.rel, size=item.size, mtime_ns=item.mtime_ns)
                if previous.path == item.rel:
                    report.skipped_unchanged += 1  # touched, same content: faces kept
                else:
                    report.moved += 1
                done += 1
                emit(item.rel)
                continue
            if item.image is None and item.error is None:  # a second copy of a moved photo
                item = _decode(on_disk[item.rel], item.rel, ())  # content decoded fine before
            batch.append(item)
            if (
                len(batch) >= BATCH
                or not pending
                or sum(map(_decoded_pixels, batch)) >= PREFETCH_PIXELS
            ):
                store(batch)
                batch = []
        if batch and not report.cancelled:
            store(batch)
    finally:
        for _, task in pending:
            task.future.cancel()
        pool.close()
    ok_before = {s.id for s in states.values() if s.status == "ok"}
    report.missing = sum(
        1 for s in lib.photo_states().values() if s.status == "missing" and s.id in ok_before
    )
    report.seconds = time.perf_counter() - t0
    return report
