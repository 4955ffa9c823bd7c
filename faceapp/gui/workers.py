"""Background jobs: engine calls off the GUI thread, their callbacks turned into Qt signals.

The engine reports progress through plain callables and asks "should I stop?"
through a callable returning bool. A :class:`Job` wraps one engine call in a
:class:`QRunnable`; its :class:`JobSignals` live in the GUI thread and re-emit
what the worker sends through queued connections, so every slot (including
lambdas) runs on the GUI thread. Progress is throttled: the engine may call back
hundreds of times a second without flooding the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)


class JobSignals(QObject):
    """What a job tells the GUI; all public signals are emitted on the GUI thread."""

    progress = Signal(object)
    finished = Signal(object)  # the function's return value
    failed = Signal(object)  # the exception (its formatted traceback in .gui_traceback)
    done = Signal()  # after finished or failed, always

    _progress = Signal(object)
    _finished = Signal(object)
    _failed = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self._failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _on_progress(self, value: object) -> None:
        self.progress.emit(value)

    @Slot(object)
    def _on_finished(self, value: object) -> None:
        self.finished.emit(value)
        self.done.emit()

    @Slot(object)
    def _on_failed(self, exc: object) -> None:
        self.failed.emit(exc)
        self.done.emit()


class Job(QRunnable):
    """Runs ``fn(job)`` on a pool thread.

    ``fn`` receives the job so it can hand ``job.report`` to the engine as its
    progress callback and ``job.is_cancelled`` as its cancel callback.
    """

    def __init__(
        self, fn: Callable[[Job], Any], *, name: str = "job", progress_interval: float = 0.05
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it (see _active below)
        self.fn = fn
        self.name = name
        self.signals = JobSignals()
        self._cancel = threading.Event()
        self._interval = progress_interval
        self._last_emit = 0.0
        self._pending: object = None
        self._has_pending = False
        self._lock = threading.Lock()
        self.running = False
        self.finished_ok: bool | None = None

    # -- called from the worker thread ---------------------------------------------------

    def report(self, value: object) -> None:
        """Progress callback for the engine; at most one signal per interval."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_emit < self._interval:
                self._pending, self._has_pending = value, True
                return
            self._last_emit = now
            self._has_pending = False
        self._emit(self.signals._progress, value)

    def is_cancelled(self) -> bool:
        """Cancel callback for the engine."""
        return self._cancel.is_set()

    def run(self) -> None:
        self.running = True
        try:
            result = self.fn(self)
        except BaseException as exc:
            exc.gui_traceback = traceback.format_exc()  # type: ignore[attr-defined]
            log.error("job %r failed: %s", self.name, exc, exc_info=exc)  # to the log file
            self._flush()
            self.finished_ok = False
            self.running = False
            self._emit(self.signals._failed, exc)
            return
        self._flush()
        self.finished_ok = True
        self.running = False
        self._emit(self.signals._finished, result)

    @staticmethod
    def _emit(signal: Any, value: object) -> None:
        # RuntimeError: the application is shutting down and nobody is listening.
        with contextlib.suppress(RuntimeError):
            signal.emit(value)

    def _flush(self) -> None:
        with self._lock:
            pending, has = self._pending, self._has_pending
            self._has_pending = False
        if has:
            self._emit(self.signals._progress, pending)

    # -- called from the GUI thread -------------------------------------------------------

    def cancel(self) -> None:
        self._cancel.set()


_active: set[Job] = set()


def start(
    job: Job,
    *,
    pool: QThreadPool | None = None,
) -> Job:
    """Start a job on ``pool`` (default: the global pool) and keep it alive until done."""
    _active.add(job)
    job.signals.done.connect(lambda j=job: _active.discard(j))
    (pool or QThreadPool.globalInstance()).start(job)
    return job


def run_in_background(
    fn: Callable[[Job], Any],
    *,
    name: str = "job",
    on_finished: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    pool: QThreadPool | None = None,
) -> Job:
    """Convenience: build a job, connect the callbacks, start it."""
    job = Job(fn, name=name)
    if on_progress is not None:
        job.signals.progress.connect(on_progress)
    if on_finished is not None:
        job.signals.finished.connect(on_finished)
    if on_failed is not None:
        job.signals.failed.connect(on_failed)
    return start(job, pool=pool)


def active_jobs() -> list[Job]:
    return list(_active)


def cancel_all_and_wait(timeout_ms: int = 30_000) -> bool:
    """At exit: ask every job to stop, then wait for the pool to drain."""
    for job in list(_active):
        job.cancel()
    return QThreadPool.globalInstance().waitForDone(timeout_ms)
