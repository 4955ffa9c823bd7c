"""The open library and the background work on it: the GUI's core (no widgets).

:class:`LibrarySession` owns the :class:`~faceapp.engine.library.Library`, the
shared analyzer (detector + embedder, expensive to build) and the scan and
clustering jobs. Views listen to its signals and call its methods; it calls only
the engine API. Engine modules are imported lazily so the window appears before
torch has loaded.

Identity operations and undo go through the engine's op log (see
:mod:`faceapp.gui.operations`, mixed in here).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from faceapp import config
from faceapp.gui import workers
from faceapp.gui.groups import GroupKey, GroupKind
from faceapp.gui.library_errors import library_problem, report
from faceapp.gui.library_watch import LibraryWatch
from faceapp.gui.operations import OperationsMixin
from faceapp.gui.settings import AppSettings

REFRESH_MS = 1000  # how often views refresh from the library while a scan runs


def weights_label(source: str) -> str:
    return {
        "casia-webface": "FaceNet CASIA-WebFace (offline)",
        "vggface2": "FaceNet VGGFace2",
        "user": "your weights file",
        "random-dev": "RANDOM development weights",
        "finetuned": "fine-tuned on your album",
    }.get(source, source)


def warm_up_engine() -> None:
    """Import the engine's heavy modules (torch, hdbscan) once, in a worker, at startup.

    Importing an extension module holds the GIL for hundreds of milliseconds;
    done here, that happens while the user looks at the welcome screen instead
    of in the middle of a scan or a merge.
    """
    import importlib

    names = ("pipeline", "verify", "people", "review", "cluster")
    modules = [f"faceapp.engine.{m}" for m in names]
    modules.append("hdbscan")  # the clustering engine imports it lazily; it pulls in sklearn
    for name in modules:
        with contextlib.suppress(ImportError):  # reported when the feature is used
            importlib.import_module(name)


def is_weights_error(exc: BaseException) -> bool:
    """True for the engine's WeightsError (checked by name so torch need not be imported)."""
    return any(cls.__name__ == "WeightsError" for cls in type(exc).__mro__)


class LibrarySession(OperationsMixin, QObject):
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

    # -- weights and analyzer -----------------------------------------------------------

    def probe_weights(self) -> workers.Job:
        """Resolve the weights in the background, to show which are in use (or the banner)."""
        user = self.settings.weights_path
        device = self.settings.device

        def work(job: workers.Job) -> dict:
            from faceapp.engine import weights

            warm_up_engine()
            loaded = weights.resolve_weights(user)
            info = weights.describe(loaded)
            info["device"] = config.resolve_device(device)
            return info

        return workers.run_in_background(
            work, name="weights", on_finished=self._on_weights, on_failed=self._on_weights_failed
        )

    @Slot(object)
    def _on_weights(self, info: dict) -> None:
        self.weights_info = info
        self.weightsReady.emit(info)
        if self.scan_waits_for_weights and self.lib is not None and not self.busy:
            self.scan_waits_for_weights = False
            self.start_scan()

    @Slot(object)
    def _on_weights_failed(self, exc: BaseException) -> None:
        if is_weights_error(exc) or isinstance(exc, OSError | ValueError):
            self.weightsFailed.emit(str(exc))
        else:
            self.error.emit("Weights", f"Could not load the face recognition weights:\n{exc}")

    def analyzer(self) -> Any:
        """The shared analyzer for the open library (or plain weights without one).

        Called from worker threads; built once per library, model version,
        device and weights file, because building it loads the networks.
        """
        from faceapp.engine import pipeline, weights

        lib = self.lib
        device = self.settings.device
        user = self.settings.weights_path
        active = lib.active_model() if lib is not None else None
        key = (
            str(lib.path) if lib is not None else None,
            active.id if active else None,
            device,
            str(user) if user else None,
        )
        with self._analyzer_lock:
            if self._analyzer is not None and self._analyzer_key == key:
                return self._analyzer
            if lib is not None:
                analyzer = pipeline.analyzer_for_library(lib, device, user)
            else:
                analyzer = pipeline.Analyzer.from_weights(weights.resolve_weights(user), device)
            self._analyzer, self._analyzer_key = analyzer, key
            return analyzer

    def forget_analyzer(self) -> None:
        """After a change of device, weights file or model version."""
        with self._analyzer_lock:
            self._analyzer = None
            self._analyzer_key = None

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

    # -- scanning -------------------------------------------------------------------------

    def start_scan(self, retry: list[str] | None = None) -> workers.Job | None:
        """Scan the folder in a worker; ``retry``: read just these problem files again."""
        if self.lib is None or self.folder is None or self.busy:
            return None
        from faceapp.engine import pipeline

        lib, root = self.lib, self.folder

        def work(job: workers.Job) -> Any:
            analyzer = self.analyzer()
            run = dict(progress=job.report, cancel=job.is_cancelled)
            if retry is not None:
                return pipeline.retry(lib, root, analyzer, retry, **run)
            return pipeline.scan(lib, root, analyzer, **run)

        job = workers.Job(work, name="scan", progress_interval=0.1)
        job.signals.progress.connect(self._on_scan_progress)
        job.signals.finished.connect(self._on_scan_finished)
        job.signals.failed.connect(self._on_scan_failed)
        self.scan_job = job
        self.last_progress = None
        self._refreshed_at = (-1, -1)
        self.scanStarted.emit()
        self.busyChanged.emit(True)
        self._refresh_timer.start()
        workers.start(job)
        return job

    def cancel_scan(self) -> None:
        if self.scan_job is not None:
            self.scan_job.cancel()
            self.message.emit("Cancelling the scan…")

    @Slot(object)
    def _on_scan_progress(self, progress: Any) -> None:
        self.last_progress = progress
        self.scanProgress.emit(progress)

    @Slot()
    def _refresh_during_scan(self) -> None:
        p = self.last_progress
        if p is None:
            return
        state = (p.done, p.faces)
        if state != self._refreshed_at:
            self._refreshed_at = state
            self.changed.emit()

    @Slot(object)
    def _on_scan_finished(self, report: Any) -> None:
        self._refresh_timer.stop()
        self.scan_job = None
        self.last_report = report
        self.scanFinished.emit(report)
        self.changed.emit()
        if report.cancelled:
            self.busyChanged.emit(False)
            self.message.emit(
                f"Scan cancelled after {report.photos} new photos; open the folder again "
                "or press F5 to continue where it stopped."
            )
            return
        errors = f", {len(report.errors)} could not be read" if report.errors else ""
        tags = report.tags
        named = (
            f" {tags.confirmed + tags.added} faces named from the photos' tags."
            if (tags.confirmed or tags.added)
            else ""
        )
        if tags.conflicts:
            named += f" {tags.conflicts} tags disagree with your names and were not applied."
        self.message.emit(
            f"Scan finished: {report.photos} new photos, {report.faces} faces{errors}.{named}"
        )
        changed = report.photos or report.moved or report.missing
        self.start_cluster(only_if_needed=not changed, after_scan=True)

    @Slot(object)
    def _on_scan_failed(self, exc: BaseException) -> None:
        self._refresh_timer.stop()
        self.scan_job = None
        self.busyChanged.emit(False)
        self.changed.emit()
        if is_weights_error(exc):
            self.scan_waits_for_weights = True  # resumed once weights are chosen
            self.weightsFailed.emit(str(exc))
        else:
            report(self, "Scan failed", exc)

    # -- clustering ---------------------------------------------------------------------

    def cluster_params(self) -> Any:
        """The engine's ClusterParams with the user's overrides (unknown keys ignored)."""
        from faceapp.engine import cluster

        params_cls = getattr(cluster, "ClusterParams", None)
        if params_cls is None or not is_dataclass(params_cls):
            return None
        known = {f.name for f in fields(params_cls)}
        overrides = {k: v for k, v in self.settings.cluster_options.items() if k in known}
        return params_cls(**overrides)

    def start_cluster(
        self, *, only_if_needed: bool = False, after_scan: bool = False
    ) -> workers.Job | None:
        """Re-cluster in a worker; ``only_if_needed``: only when faces were never grouped;
        ``after_scan``: a large library only places its new faces (cluster.update_groups)."""
        if self.lib is None or self.cluster_job is not None or self.scan_job is not None:
            return None
        lib = self.lib
        params = self.cluster_params()

        def work(job: workers.Job) -> Any:
            from faceapp.engine import album, cluster

            if only_if_needed:
                groups = album.groups(lib)
                kinds = {GroupKind(g.kind) for g in groups if g.count}
                if GroupKind.UNKNOWN not in kinds or GroupKind.CLUSTER in kinds:
                    return None
            regroup = cluster.update_groups if after_scan else cluster.recluster
            return regroup(lib, params, progress=job.report)

        job = workers.Job(work, name="cluster")
        job.signals.progress.connect(self.clusterProgress)
        job.signals.finished.connect(self._on_cluster_finished)
        job.signals.failed.connect(self._on_cluster_failed)
        self.cluster_job = job
        self.clusterStarted.emit()
        self.busyChanged.emit(True)
        self.message.emit("Grouping faces…")
        workers.start(job)
        return job

    @Slot(object)
    def _on_cluster_finished(self, summary: Any) -> None:
        self.cluster_job = None
        if summary is None:  # nothing needed grouping
            self.busyChanged.emit(False)
            return
        self.last_summary = summary
        self.changed.emit()
        self.clusterFinished.emit(summary)
        self.busyChanged.emit(False)
        clusters = getattr(summary, "clusters", "?")
        unknown = getattr(summary, "unknown", "?")
        self.message.emit(f"Grouped faces: {clusters} clusters, {unknown} unsorted faces.")

    @Slot(object)
    def _on_cluster_failed(self, exc: BaseException) -> None:
        self.cluster_job = None
        self.busyChanged.emit(False)
        self.changed.emit()
        report(self, "Grouping faces failed", exc)

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
