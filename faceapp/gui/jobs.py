"""The session's background work: the weights and the shared analyzer, the scan and the
regroup, each in a worker whose signals come back to the session (mixed into
:class:`~faceapp.gui.session.LibrarySession`). Engine modules are imported inside
the workers so the window appears before torch has loaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Slot

from faceapp import config
from faceapp.gui import workers
from faceapp.gui.groups import GroupKind
from faceapp.gui.library_errors import report

if TYPE_CHECKING:
    from faceapp.gui.session import LibrarySession


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


class JobsMixin:
    """Weights, analyzer, scanning and grouping of the open library (mixed into
    :class:`~faceapp.gui.session.LibrarySession`)."""

    # -- weights and analyzer -----------------------------------------------------------

    def probe_weights(self: LibrarySession) -> workers.Job:
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
    def _on_weights(self: LibrarySession, info: dict) -> None:
        self.weights_info = info
        self.weightsReady.emit(info)
        if self.scan_waits_for_weights and self.lib is not None and not self.busy:
            self.scan_waits_for_weights = False
            self.start_scan()

    @Slot(object)
    def _on_weights_failed(self: LibrarySession, exc: BaseException) -> None:
        if is_weights_error(exc) or isinstance(exc, OSError | ValueError):
            self.weightsFailed.emit(str(exc))
        else:
            self.error.emit("Weights", f"Could not load the face recognition weights:\n{exc}")

    def analyzer(self: LibrarySession, lib: Any = None) -> Any:
        """The shared analyzer for ``lib`` (default: the open library; plain weights
        without one).

        Called from worker threads; built once per library, model version,
        device and weights file, because building it loads the networks.
        """
        from faceapp.engine import pipeline, weights

        lib = self.lib if lib is None else lib
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

    def forget_analyzer(self: LibrarySession) -> None:
        """After a change of device, weights file or model version."""
        with self._analyzer_lock:
            self._analyzer = None
            self._analyzer_key = None

    # -- scanning -------------------------------------------------------------------------

    def start_scan(self: LibrarySession, retry: list[str] | None = None) -> workers.Job | None:
        """Scan the folder in a worker; ``retry``: read just these problem files again."""
        if self.lib is None or self.folder is None or self.busy:
            return None
        from faceapp.engine import pipeline

        lib, root = self.lib, self.folder
        self.cancel_small_faces()  # one user of the network at a time

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

    # -- small faces ---------------------------------------------------------------------

    @property
    def measuring(self: LibrarySession) -> bool:
        return self.small_job is not None

    def measure_small_faces(
        self: LibrarySession, measured: Callable[[int], None]
    ) -> workers.Job | None:
        """Small faces not yet compared with named people at their own resolution
        (:mod:`faceapp.engine.small_match`) are, in a worker with this library's own
        network; ``measured(pairs)`` follows. Not while a scan or regroup runs (the
        refresh after it measures); a scan, closing the library or quitting cancel it
        (the chunks measured so far are kept)."""
        lib = self.lib
        if lib is None or self.busy or self.measuring:
            return None

        def work(job: workers.Job) -> int:
            from faceapp.engine import small_match

            todo = small_match.to_measure(lib)
            model = lib.active_model()
            if not todo or model is None or job.is_cancelled():
                return 0
            embed = self.analyzer(lib).embedder.embed  # may be slow: the networks load
            run = dict(todo=todo, cancel=job.is_cancelled, progress=job.report)
            return small_match.update(lib, embed, model.id, **run)

        def progress(value: tuple[int, int]) -> None:
            if self.small_job is job:
                self.message.emit(
                    f"Comparing small faces with named people: {value[0]} of {value[1]}"
                )

        def finished(pairs: int) -> None:
            if self.small_job is job:
                self.small_job = None
            measured(pairs)

        def failed(_exc: BaseException) -> None:  # logged; the queue keeps plain distances
            if self.small_job is job:
                self.small_job = None

        job = workers.run_in_background(
            work, name="small faces", on_finished=finished, on_failed=failed, on_progress=progress
        )
        self.small_job = job
        return job

    def cancel_small_faces(self: LibrarySession) -> None:
        if self.small_job is not None:
            self.small_job.cancel()
            self.small_job = None

    def cancel_scan(self: LibrarySession) -> None:
        if self.scan_job is not None:
            self.scan_job.cancel()
            self.message.emit("Cancelling the scan…")

    @Slot(object)
    def _on_scan_progress(self: LibrarySession, progress: Any) -> None:
        self.last_progress = progress
        self.scanProgress.emit(progress)

    @Slot()
    def _refresh_during_scan(self: LibrarySession) -> None:
        p = self.last_progress
        if p is None:
            return
        state = (p.done, p.faces)
        if state != self._refreshed_at:
            self._refreshed_at = state
            self.changed.emit()

    @Slot(object)
    def _on_scan_finished(self: LibrarySession, report: Any) -> None:
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
    def _on_scan_failed(self: LibrarySession, exc: BaseException) -> None:
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

    def cluster_params(self: LibrarySession) -> Any:
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
    def _on_cluster_finished(self: LibrarySession, summary: Any) -> None:
        self.cluster_job = None
        if summary is None:  # nothing needed grouping
            self.busyChanged.emit(False)
            return
        self.last_summary = summary
        self.changed.emit()
        self.clusterFinished.emit(summary)
        self.busyChanged.emit(False)
        self.message.emit(grouped_message(summary))

    @Slot(object)
    def _on_cluster_failed(self: LibrarySession, exc: BaseException) -> None:
        self.cluster_job = None
        self.busyChanged.emit(False)
        self.changed.emit()
        report(self, "Grouping faces failed", exc)


def grouped_message(summary: Any) -> str:
    """The status line after grouping: a full regroup's clusters, or what the placement
    of a large library's new faces did with them."""

    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    if hasattr(summary, "clusters"):
        clusters, unknown = n(summary.clusters, "cluster"), n(summary.unknown, "unsorted face")
        return f"Grouped faces: {clusters}, {unknown}."
    return (
        f"Placed {n(summary.faces, 'new face')}: {summary.placed} in groups,"
        f" {summary.suggested} suggested for named people, {summary.unknown} unsorted."
    )
