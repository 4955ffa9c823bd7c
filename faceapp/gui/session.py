"""The open library and the background work on it: the GUI's core (no widgets).

:class:`LibrarySession` owns the :class:`~faceapp.engine.library.Library`, the
shared analyzer (detector + embedder, expensive to build) and the scan and
clustering jobs. Views listen to its signals and call its methods; it calls only
the engine API. Engine modules are imported lazily so the window appears before
torch has loaded.

The weights, the analyzer, scanning and grouping run in workers
(:mod:`faceapp.gui.jobs`); identity operations and undo go through the engine's op
log (:mod:`faceapp.gui.operations`); both are mixed in here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from faceapp import config
from faceapp.gui import workers
from faceapp.gui.groups import GroupKey
from faceapp.gui.jobs import JobsMixin
from faceapp.gui.library_errors import library_problem, report
from faceapp.gui.library_watch import LibraryWatch
from faceapp.gui.operations import OperationsMixin
from faceapp.gui.outliers import OutlierChecks
from faceapp.gui.settings import AppSettings

REFRESH_MS = 1000  # how often views refresh from the library while a scan runs


class LibrarySession(JobsMixin, OperationsMixin, QObject):
    """One open library; every change to it goes through here."""

    libraryOpened = Signal(object)  # Library
    libraryClosed = Signal()
    changed = Signal()  # the people/faces in the library changed: views refresh
    scanStarted = Signal()
    scanProgress = Signal(object)  # engine ScanProgress
    scanFinished = Signal(object)  # engine ScanReport
    clusterStarted = Signal()
    clusterProgress = Signal(object)  # a short text from the engine ("clustering 812 faces")
    clusterFinished = Signal(object)  # engine ClusterSummary
    busyChanged = Signal(bool)  # scanning or clustering
    weightsReady = Signal(dict)  # engine weights.describe() + device
    weightsFailed = Signal(str)  # a clear message for the banner
    message = Signal(str)  # for the status bar
    error = Signal(str, str)  # title, text
    damaged = Signal(object, str)  # library path, what is wrong: offer a backup
    operationDone = Signal(object)  # engine OpChanges of an operation, undo or redo done here
    undoStatusChanged = Signal(object)  # engine UndoStatus (None: no library)

    def __init__(self, settings: AppSettings | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings or AppSettings()
        self.lib = None
        self.folder: Path | None = None
        self.undo_status: Any = None  # engine UndoStatus of the open library
        self.damage_offered = False  # the backup was offered for the open library
        self.last_command_seconds = 0.0
        # the one poller for changes made elsewhere (another window, `faceapp undo`)
        self.library_watch = LibraryWatch(self)
        self.library_watch.changedElsewhere.connect(self._changed_elsewhere)
        self.open_job: workers.Job | None = None
        self.scan_job: workers.Job | None = None
        self.cluster_job: workers.Job | None = None
        self.small_job: workers.Job | None = None  # small faces measured for Review
        self.last_progress = None
        self.last_report = None
        self.last_summary = None
        self.weights_info: dict | None = None
        self.scan_waits_for_weights = False
        self._analyzer: Any = None
        self._analyzer_key: tuple | None = None
        self._analyzer_lock = threading.Lock()
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_during_scan)
        self._refreshed_at: tuple[int, int] = (-1, -1)
        # the one queue of outlier checks: every naming of a cluster waits for its own
        self.outlier_checks = OutlierChecks(self)
        self.clusters_being_named: set[tuple[str, int]] = set()  # (library path, cluster)

    # -- state ----------------------------------------------------------------------------

    @property
    def opening(self) -> bool:
        return self.open_job is not None

    @property
    def scanning(self) -> bool:
        return self.scan_job is not None

    @property
    def clustering(self) -> bool:
        return self.cluster_job is not None

    @property
    def busy(self) -> bool:
        return self.scanning or self.clustering

    # -- opening and closing ---------------------------------------------------------------

    def library_path_for(self, folder: Path) -> Path:
        default = config.default_library_path(folder)
        custom = self.settings.library_dir
        return custom / default.name if custom else default

    def open_folder(
        self, folder: Path, *, scan: bool = True, library_path: Path | None = None
    ) -> workers.Job | None:
        """Open (or create) the library of a photo folder, then look for new photos.

        Opening runs in a worker (the engine module brings torch with it, which
        must not be imported on the GUI thread); ``libraryOpened`` follows.
        """
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            self.error.emit("Open Photo Folder", f"{folder} is not a folder.")
            return None
        if self.busy:
            self.error.emit(
                "Open Photo Folder", "Wait for the current scan to finish or cancel it."
            )
            return None
        path = library_path or self.library_path_for(folder)

        def work(job: workers.Job) -> Any:
            from faceapp.engine.library import open_library  # no torch: opens fast

            return open_library(folder, path)

        def failed(exc: BaseException) -> None:
            if not self._report_damage(path, exc):
                self.error.emit(
                    "Open Photo Folder", f"Could not open the library for {folder}:\n{exc}"
                )

        self.message.emit(f"Opening {folder.name}…")
        job = workers.Job(work, name="open")
        job.signals.finished.connect(lambda lib, j=job: self._opened(j, lib, folder, scan))
        job.signals.failed.connect(failed)
        job.signals.done.connect(lambda j=job: self._open_done(j))
        self.open_job = job
        return workers.start(job)

    def _open_done(self, job: workers.Job) -> None:
        if self.open_job is job:
            self.open_job = None

    def _opened(self, job: workers.Job, lib: Any, folder: Path, scan: bool) -> None:
        if self.open_job is not job:
            lib.close()
            return
        self.open_job = None
        self._set_library(lib, folder)
        self.settings.add_recent(folder, Path(lib.path))
        if scan:
            self.start_scan()

    def open_library_file(self, library_path: Path, *, scan: bool | None = None):
        """Open an existing library file (recent list); its folder comes from the library."""
        from faceapp.engine.library import Library

        try:
            probe = Library(library_path, create=False)
            root = probe.root
            probe.close()
        except Exception as exc:
            if not self._report_damage(Path(library_path), exc):
                self.error.emit("Open Library", f"Could not open {library_path}:\n{exc}")
            return None
        if root is None:
            self.error.emit(
                "Open Library", f"{library_path} does not say which folder it describes."
            )
            return None
        if scan is None:
            scan = self.settings.rescan_on_open and root.is_dir()
        if not root.is_dir():
            # The folder is gone or unplugged: still show what the library knows.
            self._set_library(Library(library_path, create=False), root)
            self.message.emit(f"The folder {root} is not available; showing the stored faces.")
            return None
        return self.open_folder(root, scan=bool(scan), library_path=Path(library_path))

    def _report_damage(self, library_path: Path, exc: BaseException) -> bool:
        """A damaged library: offer a backup (``damaged``) instead of a plain error."""
        problem = library_problem(exc, Path(library_path))
        if problem is None or not problem.damaged:
            return False
        self.damage_offered = False  # a library being opened: always offer
        report(self, "Open Library", exc, Path(library_path))
        return True

    def _set_library(self, lib: Any, folder: Path) -> None:
        self.close_library(quiet=True)
        self.lib = lib
        self.folder = folder
        self.undo_status = None
        self.damage_offered = False
        self._poll_oplog(quiet=True)
        self.library_watch.watch(lib)
        self.libraryOpened.emit(lib)
        self.changed.emit()

    def close_library(self, *, quiet: bool = False) -> None:
        if self.lib is None:
            return
        if self.lib.edited:  # the rolling backup after a session's edits (engine/backup.py)
            from faceapp.engine import backup

            lib = self.lib
            workers.run_in_background(
                lambda _job: backup.backup_after_edits(lib),
                name="backup",
                on_failed=lambda exc: self.message.emit(f"No backup was made: {exc}"),
            )
        self.cancel_scan()
        self.cancel_small_faces()
        for job in (self.scan_job, self.cluster_job):
            if job is not None:
                job.cancel()
        self.library_watch.watch(None)
        self.lib = None
        self.folder = None
        self.undo_status = None
        self.undoStatusChanged.emit(None)
        self.forget_analyzer()
        if not quiet:
            self.libraryClosed.emit()

    # -- reading ------------------------------------------------------------------------------

    def groups(self) -> list:
        if self.lib is None:
            return []
        from faceapp.engine import album

        return album.groups(self.lib)

    def group_faces(self, key: GroupKey) -> list[int]:
        if self.lib is None:
            return []
        from faceapp.engine import album

        return list(album.group_faces(self.lib, key.kind, key.id))

    def photo_file(self, photo_path: str) -> Path | None:
        root = self.folder or (self.lib.root if self.lib is not None else None)
        return (Path(root) / photo_path) if root else None

    def shutdown(self) -> None:
        self.cancel_scan()
        self.close_library(quiet=True)  # starts the after-edits backup, awaited below
        workers.cancel_all_and_wait(30_000)
