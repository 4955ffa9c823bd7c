"""Face thumbnails: an LRU cache of QImage, filled by a background decoder.

Views ask :meth:`ThumbnailCache.get` while painting; a miss returns None at once
and queues the face id. One pool thread reads the 160x160 JPEG crops with
``Library.face_crop`` (its own SQLite connection) and decodes them into QImage
(QImage, unlike QPixmap, is safe off the GUI thread). Newest requests are
served first, so the rows on screen after a fast scroll win over the ones
scrolled past, and the queue is bounded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from PySide6.QtCore import QObject, QRectF, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QImage, QPainter, QPainterPath

from faceapp.gui import workers

MAX_QUEUE = 800
BATCH = 24


def decode_thumbnail(jpeg: bytes, size: int, radius: float = 0.0) -> QImage:
    """JPEG bytes -> a ``size`` x ``size`` premultiplied QImage, corners rounded by ``radius``.

    Safe in any thread (QImage and QPainter on a QImage are). Rounding here, once,
    lets the grid paint each thumbnail with one unscaled, unclipped drawImage.
    """
    image = QImage.fromData(jpeg, "JPEG")
    if image.isNull():
        return image
    side = min(image.width(), image.height())
    if image.width() != image.height():
        image = image.copy((image.width() - side) // 2, (image.height() - side) // 2, side, side)
    if side != size:
        image = image.scaled(
            size,
            size,
            Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    image = image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    if radius <= 0:
        return image
    out = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    path = QPainterPath()
    path.addRoundedRect(QRectF(0, 0, size, size), radius, radius)
    painter.setClipPath(path)
    painter.drawImage(0, 0, image)
    painter.end()
    return out


class ThumbnailCache(QObject):
    """Face id -> QImage, least recently used evicted first."""

    ready = Signal(list)  # face ids whose thumbnails just arrived

    def __init__(
        self,
        size: int = 112,
        capacity: int = 1500,
        radius: float = 10.0,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.size = size
        self.radius = radius
        self.capacity = capacity
        self._lib = None
        self._generation = 0
        self._images: OrderedDict[int, QImage] = OrderedDict()
        self._queue: deque[int] = deque()
        self._queued: set[int] = set()
        self._failed: set[int] = set()
        self._lock = threading.Lock()
        self._loader: workers.Job | None = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # decoding is cheap; keep the cores for the scan
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self._start_loader)
        self.decoded = 0  # statistics for tests and the benchmark

    def set_library(self, lib: object | None) -> None:
        """Forget everything: ids are only meaningful within one library."""
        with self._lock:
            self._generation += 1
            self._lib = lib
            self._images.clear()
            self._queue.clear()
            self._queued.clear()
            self._failed.clear()

    def set_size(self, size: int) -> None:
        """Thumbnails are made at the size the grid paints them: a zoom starts afresh."""
        if size != self.size:
            self.set_library(self._lib)
            with self._lock:
                self.size = size

    def invalidate(self, face_ids: list[int] | None = None) -> None:
        with self._lock:
            if face_ids is None:
                self._images.clear()
                self._failed.clear()
            else:
                for fid in face_ids:
                    self._images.pop(fid, None)
                    self._failed.discard(fid)

    def get(self, face_id: int) -> QImage | None:
        """The cached thumbnail, or None after queueing it for decoding."""
        image = self._images.get(face_id)
        if image is not None:
            self._images.move_to_end(face_id)
            return image
        self.request(face_id)
        return None

    def peek(self, face_id: int) -> QImage | None:
        return self._images.get(face_id)

    def request(self, face_id: int) -> None:
        if self._lib is None or face_id in self._failed:
            return
        with self._lock:
            if face_id in self._queued:
                return
            self._queue.append(face_id)
            self._queued.add(face_id)
            while len(self._queue) > MAX_QUEUE:
                self._queued.discard(self._queue.popleft())
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + (1 if self._loader is not None else 0)

    # -- loading ------------------------------------------------------------------------

    @Slot()
    def _start_loader(self) -> None:
        if self._loader is not None:
            return
        with self._lock:
            if not self._queue:
                return
            generation, lib, size, radius = self._generation, self._lib, self.size, self.radius
        job = workers.Job(
            lambda j: self._load(j, lib, generation, size, radius),
            name="thumbnails",
            progress_interval=0,
        )
        job.signals.progress.connect(self._on_batch)
        job.signals.done.connect(self._on_loader_done)
        self._loader = job
        workers.start(job, pool=self._pool)

    def _load(
        self, job: workers.Job, lib: object, generation: int, size: int, radius: float
    ) -> None:
        """Worker thread: pop the newest ids, read and decode them, hand them over."""
        while not job.is_cancelled():
            with self._lock:
                if generation != self._generation or not self._queue:
                    return
                ids = [self._queue.pop() for _ in range(min(BATCH, len(self._queue)))]
            batch: list[tuple[int, QImage | None]] = []
            for fid in ids:
                try:
                    crop = lib.face_crop(fid)  # type: ignore[attr-defined]
                    image = decode_thumbnail(crop, size, radius)
                except Exception:
                    image = None
                batch.append((fid, None if image is None or image.isNull() else image))
            job.report((generation, batch))

    @Slot(object)
    def _on_batch(self, payload: object) -> None:
        generation, batch = payload  # type: ignore[misc]
        if generation != self._generation:
            return
        ids = []
        with self._lock:
            for fid, image in batch:
                self._queued.discard(fid)
                if image is None:
                    self._failed.add(fid)
                    continue
                self._images[fid] = image
                self._images.move_to_end(fid)
                ids.append(fid)
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)
        self.decoded += len(ids)
        if ids:
            self.ready.emit(ids)

    @Slot()
    def _on_loader_done(self) -> None:
        self._loader = None
        with self._lock:
            more = bool(self._queue)
        if more:
            self._flush_timer.start()

    def shutdown(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
        self._pool.waitForDone(5000)
