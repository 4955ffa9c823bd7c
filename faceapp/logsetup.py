"""One log file for the command line and the GUI, in the user data directory.

``setup_logging()`` runs at the start of ``faceapp`` and of the GUI: a rotating
file (``logs/faceapp.log``, 1 MB, three old files kept) receives everything from
INFO up, including the traceback of every failed job, and Python
warnings (Pillow's "possibly corrupt EXIF data" and the like) go there too instead
of the terminal. The GUI offers the newest traceback as the details of its error
message (:func:`take_recent_failure`) and can open the file itself.
"""

from __future__ import annotations

import logging
import threading
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

from faceapp import config

LOG_NAME = "faceapp.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
FORMAT = "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"


def log_file() -> Path:
    """Where the log is written (the data directory honours FACEAPP_DATA_DIR)."""
    return config.data_dir() / "logs" / LOG_NAME


class _LogFile(RotatingFileHandler):
    """Opened for each record and closed again, so that the log never holds the data
    directory's disk busy (unmount, remount); one that cannot be written (full or
    read-only disk) never disturbs the app."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        finally:
            if self.stream is not None:
                self.stream.close()
                self.stream = None  # type: ignore[assignment]

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class _RecentFailure(logging.Handler):
    """Keeps the newest logged traceback, for an error message's details."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._lock_recent = threading.Lock()
        self._recent: tuple[float, str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            text = f"{record.getMessage()}\n{logging.Formatter().formatException(record.exc_info)}"
            with self._lock_recent:
                self._recent = (time.monotonic(), text)

    def take(self, max_age: float) -> str | None:
        with self._lock_recent:
            recent, self._recent = self._recent, None
        if recent is None or time.monotonic() - recent[0] > max_age:
            return None
        return recent[1]


_recent = _RecentFailure()
_file_handler: _LogFile | None = None


def setup_logging() -> Path | None:
    """Configure logging (again only if the data directory changed); the log file's path.

    None when the file cannot be written: an unwritable data directory (read-only,
    full) costs the log file, never the app.
    """
    global _file_handler
    root = logging.getLogger()
    if _recent not in root.handlers:
        root.setLevel(logging.INFO)
        root.addHandler(_recent)
        logging.captureWarnings(True)
    try:
        path = log_file()
        if _file_handler is not None and Path(_file_handler.baseFilename) == path.absolute():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(path)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    if _file_handler is not None:
        root.removeHandler(_file_handler)
        _file_handler.close()
    root.addHandler(handler)
    _file_handler = handler
    return path


def take_recent_failure(max_age: float = 5.0) -> str | None:
    """The traceback logged in the last ``max_age`` seconds, once (then it is forgotten)."""
    return _recent.take(max_age)
