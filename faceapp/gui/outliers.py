"""The check for faces that do not fit a group, off the GUI thread.

:func:`faceapp.engine.naming.cluster_outliers` reads every face of the library (seconds
on a large one), so it runs in a worker: the name dialog opens at once and says
"Checking…" until the answer comes, and naming a group waits for it (the faces that
do not fit go to review, never into the person). Answers are handed on in the order
they were asked for, so two groups named one after the other are named, and undone,
in that order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from faceapp.gui import workers


class OutlierCheck(QObject):
    """One cluster's check. ``checked`` fires as soon as the answer is known; ``then``
    callbacks run in the order the checks were started."""

    checked = Signal(object)  # list of face ids, or None when the check failed
    _ready = Signal(object)

    def __init__(self, lib: Any, cluster_id: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.lib = lib
        self.cluster_id = cluster_id
        self.finished = False
        self.delivered = False
        self.result: list[int] | None = None
        self.error: BaseException | None = None  # why the check failed

    def then(self, fn: Callable[[list[int] | None], Any]) -> None:
        """Call ``fn(face ids)`` once this check and every check started before it are
        done (None: the check failed, ``error`` says why)."""
        if self.delivered:
            fn(self.result)
        else:
            self._ready.connect(fn)


class OutlierChecks(QObject):
    """Starts checks in workers and hands their answers on in order."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: deque[OutlierCheck] = deque()

    def start(self, lib: Any, cluster_id: int) -> OutlierCheck:
        check = OutlierCheck(lib, cluster_id, self)
        self._queue.append(check)

        def work(_job: workers.Job) -> list[int]:
            from faceapp.engine import naming

            return list(naming.cluster_outliers(lib, cluster_id))

        workers.run_in_background(
            work,
            name="outliers",
            on_finished=lambda ids: self._finish(check, ids),
            on_failed=lambda exc: self._failed(check, exc),
        )
        return check

    @property
    def running(self) -> bool:
        return bool(self._queue)

    def _failed(self, check: OutlierCheck, exc: BaseException) -> None:
        check.error = exc
        self._finish(check, None)

    def _finish(self, check: OutlierCheck, result: list[int] | None) -> None:
        check.result, check.finished = result, True
        check.checked.emit(result)
        while self._queue and self._queue[0].finished:
            head = self._queue.popleft()
            head.delivered = True
            head._ready.emit(head.result)
