"""Notice changes another window or process made to the open library: one poller.

SQLite's ``PRAGMA data_version`` changes on a connection whenever another
connection commits; reading it on the GUI thread's connection is one cheap query.
Only when it changed does the session read anything more (the undo state, then the
views re-read the library), so a second window or ``faceapp`` on the command line
(an operation, ``faceapp undo``) never leaves this one showing groups that are gone
or an Undo menu that undoes something else.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

POLL_MS = 1000


class LibraryWatch(QObject):
    """Emits ``changedElsewhere`` when the library changed through another connection."""

    changedElsewhere = Signal()

    def __init__(self, parent: QObject | None = None, interval_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self.lib: Any = None
        self._version: int | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)

    def watch(self, lib: Any) -> None:
        """Start watching ``lib`` (None: stop)."""
        self.lib = lib
        self._version = self._read() if lib is not None else None
        if lib is None:
            self._timer.stop()
        else:
            self._timer.start()

    def set_interval(self, ms: int) -> None:
        self._timer.setInterval(ms)

    def _read(self) -> int | None:
        try:
            return int(self.lib.conn.execute("PRAGMA data_version").fetchone()[0])
        except Exception:  # a closed or damaged library: the next operation reports it
            return None

    def check(self) -> bool:
        """Read the version now; True (and the signal) when someone else committed."""
        if self.lib is None:
            return False
        version = self._read()
        if version is None:  # unreadable for a moment: compare with the last good read
            return False
        changed = self._version is not None and version != self._version
        self._version = version
        if changed:
            self.changedElsewhere.emit()
        return changed
