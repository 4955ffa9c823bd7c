"""Scan stage 2, decode: hash and decode files ahead of the networks.

Decoding (Pillow releases the GIL) runs in a small thread pool ahead of the model
work, so the CPU decodes the next photos while the networks run, within a budget of
decoded pixels. A file that takes longer than :data:`DECODE_TIME_LIMIT` costs that
file, never the scan.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from faceapp.engine.image_open import ImageError
from faceapp.engine.images import DecodedImage, load_image

PREFETCH = 8  # decoded photos kept ahead of the model work
# ... and no more decoded pixels than this (~450 MB of RGB) waiting for the networks
# (queued or in the batch being filled): eight 200 MP scans would hold ~5 GB. Files
# still decoding count at the size of the largest recent photo; one photo always goes
# through.
PREFETCH_PIXELS = 150_000_000
# One file's hash + decode. A decoder can be made to spin by a crafted file, and a
# stalled network share blocks a read; neither may hang the scan. Generous, so that a
# 200 MP TIFF on a slow share on a busy machine still gets through.
DECODE_TIME_LIMIT = 120.0
TIME_LIMIT_PREFIX = "took longer than"
TIME_LIMIT_REASON = TIME_LIMIT_PREFIX + " {:.0f} s to read and decode; skipped (damaged file?)"


@dataclass
class Decoded:
    """One file after the decode stage: its image, or why there is none.

    Neither image nor error: the library knows this content (a moved photo?).
    """

    rel: str
    size: int
    mtime_ns: int
    content_hash: str
    image: DecodedImage | None = None
    error: str | None = None

    @property
    def pixels(self) -> int:
        return self.image.image.width * self.image.image.height if self.image else 0


def file_hash(path: Path) -> str:
    """Content hash: finds a photo again after it was moved or renamed."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def decode_file(
    path: Path,
    rel: str,
    known_hashes: Container[str] = (),
    load: Callable[[Path], DecodedImage] | None = None,
) -> Decoded:
    """Hash and decode one file; a file whose content the library knows is not decoded.

    ``load``: the decoder, Pillow's when None (on a GPU scan, :func:`gpu_decode.load_image_torch`).
    """
    try:
        stat = path.stat()
        content = file_hash(path)
    except OSError as exc:
        return Decoded(rel, 0, 0, "", error=f"cannot read the file: {exc.strerror or exc}")
    item = Decoded(rel, stat.st_size, stat.st_mtime_ns, content)
    if content in known_hashes:
        return item
    try:
        item.image = (load or load_image)(path)
    except ImageError as exc:
        item.error = str(exc)
    except Exception as exc:  # a decoder bug must cost one file, not the scan
        item.error = f"cannot decode ({type(exc).__name__}: {exc})"
    return item


def timed_out(path: Path, rel: str, reason: str | None = None) -> Decoded:
    """The record of a file given up after :data:`DECODE_TIME_LIMIT` (or ``reason``)."""
    try:
        stat = path.stat()
        size, mtime_ns = stat.st_size, stat.st_mtime_ns
    except OSError:
        size, mtime_ns = 0, 0
    reason = reason or TIME_LIMIT_REASON.format(DECODE_TIME_LIMIT)
    return Decoded(rel, size, mtime_ns, "", error=reason)


class _Task:
    __slots__ = ("abandoned", "args", "finished", "fn", "future", "started")

    def __init__(self, fn: Callable[..., Decoded], args: tuple) -> None:
        self.fn, self.args = fn, args
        self.future: Future[Decoded] = Future()
        self.started: float | None = None
        self.finished = False
        self.abandoned = False


class DecodePool:
    """Decoding threads with a time limit per file.

    A thread stuck in a decoder cannot be interrupted from Python. When a file
    exceeds the limit it is given up: a fresh thread takes the stuck one's place in
    the queue, and the stuck one, a daemon that exits once its decode returns,
    cannot keep the app from exiting.
    """

    def __init__(self, workers: int) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.workers = max(1, workers)
        for _ in range(self.workers):
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

    def submit(self, fn: Callable[..., Decoded], *args: object) -> _Task:
        task = _Task(fn, args)
        self._tasks.put(task)
        return task

    def result(self, task: _Task, limit: float) -> Decoded | None:
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
        for _ in range(self.workers):
            self._tasks.put(None)


class DecodeStream:
    """Files decoded in order, a bounded number of photos and pixels ahead.

    ``held`` tells how many decoded pixels the consumer holds (the batch it is
    filling); they count against :data:`PREFETCH_PIXELS` too.
    """

    def __init__(
        self,
        files: Iterable[tuple[str, Path]],
        known_hashes: Container[str],
        *,
        workers: int = 2,
        held: Callable[[], int] = lambda: 0,
        load: Callable[[Path], DecodedImage] | None = None,
    ) -> None:
        self._files = iter(files)
        self._known = known_hashes
        self._held = held
        self._load = load
        self._pool = DecodePool(workers)
        self._pending: deque[tuple[str, Path, _Task]] = deque()
        self._recent: deque[int] = deque(maxlen=PREFETCH)  # pixels of the last photos
        self._refill()

    def __bool__(self) -> bool:
        """Are files left?"""
        return bool(self._pending)

    def _room(self) -> bool:
        """May one more file be decoded ahead of the networks?"""
        if not self._pending:
            return True  # one photo always goes through
        if len(self._pending) >= PREFETCH:
            return False
        done = [
            t.future.result()
            for _, _, t in self._pending
            if t.finished and not t.future.exception()
        ]
        decoding = len(self._pending) - len(done)
        if not self._recent and decoding >= self._pool.workers:
            return False  # no size known yet: do not queue blindly
        guess = decoding * max(self._recent, default=0)
        return sum(d.pixels for d in done) + self._held() + guess < PREFETCH_PIXELS

    def _refill(self) -> None:
        while self._room():
            nxt = next(self._files, None)
            if nxt is None:
                return
            rel, path = nxt
            task = self._pool.submit(decode_file, path, rel, self._known, self._load)
            self._pending.append((rel, path, task))

    def next(self) -> Decoded:
        """The next file, decoded, given up after the time limit, or failed."""
        rel, path, task = self._pending.popleft()
        item = self._pool.result(task, DECODE_TIME_LIMIT) or timed_out(path, rel)
        self._recent.append(item.pixels)
        self._refill()
        return item

    def close(self) -> None:
        for _, _, task in self._pending:
            task.future.cancel()
        self._pool.close()
