"""Models: the library's model versions (engine: ``model_versions``), switch and remove.

Lists every version with its threshold, how many faces it has embedded and, for
fine-tuned versions, the held-out figures measured when it was trained. "Use This
Version" calls ``model_versions.activate`` in a worker (it may embed faces the
version lacks, then re-groups the faces, as ``faceapp models use`` does); "Remove"
calls ``model_versions.remove_version``. Both can be stopped or refused cleanly.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui import workers
from faceapp.gui.dialogs.question import ask_yes_no
from faceapp.gui.widgets.scan_panel import format_duration

COLUMNS = ("", "Version", "Threshold", "Held-out VAL", "Held-out accuracy", "Faces", "Status")
STAGES = {
    "embed": "Embedding faces with this version",
    "switch": "Switching",
    "cluster": "Regrouping the faces",
}


def heldout_text(before: dict | None, after: dict | None, key: str) -> str:
    """'93.1% → 97.4%' for a fine-tuned version; '—' for a base version."""
    if not after:
        return "—"
    if before and key in before:
        return f"{before[key]:.1%} → {after[key]:.1%}"
    return f"{after[key]:.1%}"


class ModelsDialog(QDialog):
    switched = Signal(object)  # engine Activation

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.session_lib = session.lib
        self.setWindowTitle("Model Versions")
        self.setMinimumSize(860, 380)
        self.versions: list = []
        self.job: workers.Job | None = None
        self._build()
        self.reload()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Each version embeds every face in its own space. The active one is used for "
            "grouping, suggestions and Verify; switching re-groups the faces (names and "
            "confirmed faces stay as they are)."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)
        self.progress = QProgressBar()
        self.progress.hide()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.use_button = QPushButton("Use This Version")
        self.use_button.setProperty("primary", True)
        self.use_button.clicked.connect(self.use_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        for b in (self.use_button, self.remove_button, self.stop_button):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(close)
        layout.addLayout(row)
        self._update_buttons()

    # -- listing ------------------------------------------------------------------------------

    def reload(self) -> workers.Job | None:
        lib = self.session.lib
        if lib is None:
            return None

        def work(job: workers.Job) -> list:
            from faceapp.engine import model_versions

            return model_versions.versions(lib)

        return workers.run_in_background(
            work, name="models", on_finished=self._show, on_failed=self._failed
        )

    def _show(self, versions: list) -> None:
        selected = self.selected()
        self.versions = list(versions)
        self.table.setRowCount(len(self.versions))
        for r, v in enumerate(self.versions):
            before, after = v.metadata.get("before"), v.metadata.get("after")
            status = v.status if v.file_ok is not False else "weights file missing"
            cells = (
                "●" if v.active else "",
                f"{v.id}: {v.name}",
                f"{v.threshold:.3f}",
                heldout_text(before, after, "val"),
                heldout_text(before, after, "accuracy"),
                f"{v.embedded_faces:,} / {v.total_faces:,}",
                "active" if v.active else status,
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 2:
                    item.setToolTip(v.threshold_source)
                if c in (2, 3, 4, 5):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
            if selected is not None and v.id == selected.id:
                self.table.selectRow(r)
        if self.selected() is None and self.versions:
            active = [i for i, v in enumerate(self.versions) if v.active]
            self.table.selectRow(active[0] if active else 0)
        self._update_buttons()

    def selected(self) -> Any:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.versions):
            return None
        return self.versions[rows[0].row()]

    # -- switching and removing ------------------------------------------------------------------

    def use_selected(self) -> workers.Job | None:
        version = self.selected()
        lib = self.session.lib
        if version is None or version.active or lib is None or self.job is not None:
            return None
        if self.session.busy:
            self.status.setText("Wait for the scan or the grouping to finish.")
            return None
        params = self.session.cluster_params()
        device = self.session.settings.device

        def work(job: workers.Job) -> Any:
            from faceapp.engine import model_versions

            return model_versions.activate(
                lib,
                version.id,
                params=params,
                progress=job.report,
                cancel=job.is_cancelled,
                device=device,
            )

        job = workers.Job(work, name="models-use", progress_interval=0.1)
        job.signals.progress.connect(self._on_progress)
        job.signals.finished.connect(self._on_switched)
        job.signals.failed.connect(self._failed)
        self.job = job
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(f"Switching to version {version.id}…")
        self._update_buttons()
        return workers.start(job)

    def _on_progress(self, p: Any) -> None:
        self.progress.setRange(0, max(1, p.total))
        self.progress.setValue(p.done)
        eta = f"  ·  {format_duration(p.eta)} left" if p.eta else ""
        count = f" {p.done:,} / {p.total:,}" if p.stage == "embed" else "…"
        self.status.setText(f"{STAGES.get(p.stage, p.stage)}{count}{eta}")

    def _on_switched(self, done: Any) -> None:
        self.job = None
        self.progress.hide()
        if not done.activated:
            self.status.setText("Stopped; the current version stays active.")
        else:
            groups = done.clusters
            regrouped = f"; faces regrouped into {groups.clusters} clusters" if groups else ""
            self.status.setText(f"Version {done.model.id} is active{regrouped}.")
            self.session.forget_analyzer()
            self.session.changed.emit()
            self.session.message.emit(f"Now using model version {done.model.id}.")
            self.switched.emit(done)
        self.reload()
        self._update_buttons()

    def remove_selected(self) -> workers.Job | None:
        version = self.selected()
        lib = self.session.lib
        if version is None or version.active or lib is None or self.job is not None:
            return None
        if not self.confirm(
            "Remove Model Version",
            f"Remove version {version.id} ({version.name})? Its embeddings and, for a "
            "fine-tuned version, its weights file are deleted. This cannot be undone.",
        ):
            return None

        def work(job: workers.Job) -> int:
            from faceapp.engine import model_versions

            model_versions.remove_version(lib, version.id)
            return version.id

        job = workers.Job(work, name="models-remove")
        job.signals.finished.connect(self._on_removed)
        job.signals.failed.connect(self._failed)
        self.job = job
        self._update_buttons()
        return workers.start(job)

    def _on_removed(self, version_id: int) -> None:
        self.job = None
        self.status.setText(f"Removed version {version_id} and its embeddings.")
        self.reload()

    def _failed(self, exc: BaseException) -> None:
        self.job = None
        self.progress.hide()
        self.status.setText(f"Could not do that: {exc}")
        self._update_buttons()

    def confirm(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace this)."""
        return ask_yes_no(self, title, text)

    def stop(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Stopping…")

    def _update_buttons(self) -> None:
        v = self.selected()
        idle = self.job is None
        usable = v is not None and not v.active and v.status == "ready" and v.file_ok is not False
        self.use_button.setEnabled(idle and usable)
        self.remove_button.setEnabled(idle and v is not None and not v.active)
        self.stop_button.setEnabled(not idle)

    def closeEvent(self, event: Any) -> None:
        if self.job is not None:
            self.job.cancel()
        super().closeEvent(event)
