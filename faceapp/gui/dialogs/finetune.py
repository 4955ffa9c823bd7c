"""Fine-tune: teach the embedder the people the user confirmed (engine: ``finetune``).

Shows what will be trained on (``finetune.plan``), the options, a live plot of
the training loss and the held-out VAL, the ETA, and at the end the before/after
table with Accept (``finetune.accept``: new model version, every face
re-embedded, then the switch) or Discard (``finetune.discard``). Training and
accepting run in workers and can be stopped.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui import workers
from faceapp.gui.widgets.chart import LineChart
from faceapp.gui.widgets.scan_panel import format_duration

TRAINABLE_LABELS = {
    "last": "Last layers only (fastest)",
    "block8": "Last block + head",
    "repeat_3": "Last blocks + head (recommended)",
    "mixed_7a": "More blocks (slow)",
}
METRIC_ROWS = [
    ("VAL at FAR 1e-3", "val", "{:.1%}"),
    ("Miss rate (1 − VAL)", "miss", "{:.1%}"),
    ("Verification accuracy", "accuracy", "{:.1%}"),
    ("ROC AUC", "auc", "{:.4f}"),
    ("Threshold (balanced)", "threshold", "{:.3f}"),
    ("Held-out pairs (same / different)", "pairs", "{}"),
]


def _metric(m: Any, key: str, fmt: str) -> str:
    if m is None:
        return "—"
    if key == "pairs":
        return f"{m.same_pairs:,} / {m.diff_pairs:,}"
    value = getattr(m, key, None)
    return "—" if value is None else fmt.format(value)


class FineTuneDialog(QDialog):
    trainingFinished = Signal(object)  # FinetuneResult
    accepted_version = Signal(object)  # AcceptReport

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.session_lib = session.lib
        self.setWindowTitle("Fine-tune Recognition")
        self.setMinimumSize(1000, 760)
        self.plan: Any = None
        self.result: Any = None
        self.job: workers.Job | None = None
        self.state = "planning"  # planning, ready, blocked, training, trained, accepting, done
        self._last_epoch_plotted = -1
        self._build()
        self._load_plan()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(10)
        intro = QLabel(
            "Face Album can learn the people you confirmed: it fine-tunes its face embedder "
            "with the FaceNet triplet loss on their faces, checks the result on faces it did "
            "not train on, and keeps the new model only if you accept it."
        )
        intro.setWordWrap(True)
        intro.setObjectName("muted")
        layout.addWidget(intro)

        top = QHBoxLayout()
        data = QGroupBox("Training data")
        dl = QVBoxLayout(data)
        self.plan_label = QLabel("Looking at your confirmed faces…")
        self.plan_label.setWordWrap(True)
        self.people_table = QTableWidget(0, 3)
        self.people_table.setHorizontalHeaderLabels(["Person", "Train", "Held out"])
        self.people_table.verticalHeader().hide()
        self.people_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.people_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.people_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.people_table.setMinimumHeight(150)
        dl.addWidget(self.plan_label)
        dl.addWidget(self.people_table)
        top.addWidget(data, 3)

        opts = QGroupBox("Options")
        form = QFormLayout(opts)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.mining = QComboBox()
        self.trainable = QComboBox()
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 1e-1)
        self.lr.setSingleStep(1e-5)
        self.people_per_batch = QSpinBox()
        self.people_per_batch.setRange(2, 256)
        self.faces_per_person = QSpinBox()
        self.faces_per_person.setRange(2, 64)
        form.addRow("Epochs (at most):", self.epochs)
        form.addRow("Triplet mining:", self.mining)
        form.addRow("What learns:", self.trainable)
        form.addRow("Learning rate:", self.lr)
        form.addRow("People per batch:", self.people_per_batch)
        form.addRow("Faces per person:", self.faces_per_person)
        top.addWidget(opts, 2)
        layout.addLayout(top)

        status = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.status = QLabel("")
        self.status.setObjectName("muted")
        status.addWidget(self.progress, 1)
        status.addWidget(self.status, 2)
        layout.addLayout(status)

        results = QHBoxLayout()
        self.chart = LineChart()
        self.chart.add_series("training loss", "#2563eb", "left")
        self.chart.add_series("held-out VAL", "#16a34a", "right", fixed=(0.0, 1.0))
        self.chart.setMinimumHeight(240)
        self.table = QTableWidget(len(METRIC_ROWS), 2)
        self.table.setHorizontalHeaderLabels(["Before", "After"])
        self.table.setVerticalHeaderLabels([r[0] for r in METRIC_ROWS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(30)
        self.table.setFixedHeight(30 * len(METRIC_ROWS) + 36)
        self.table.setMinimumWidth(380)
        results.addWidget(self.chart, 3)
        results.addWidget(self.table, 2, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(results, 1)
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        layout.addWidget(self.verdict)

        buttons = QHBoxLayout()
        self.start = QPushButton("Start")
        self.start.setProperty("primary", True)
        self.stop = QPushButton("Stop")
        self.accept_button = QPushButton("Accept New Model")
        self.discard_button = QPushButton("Discard")
        self.close_button = QPushButton("Close")
        self.start.clicked.connect(self.start_training)
        self.stop.clicked.connect(self.stop_job)
        self.accept_button.clicked.connect(self.accept_result)
        self.discard_button.clicked.connect(self.discard_result)
        self.close_button.clicked.connect(self.close)
        for b in (
            self.start,
            self.stop,
            self.accept_button,
            self.discard_button,
            self.close_button,
        ):
            b.setAutoDefault(False)  # "primary" is set by state, not by focus
        buttons.addWidget(self.start)
        buttons.addWidget(self.stop)
        buttons.addStretch(1)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self._update_buttons()

    # -- plan -----------------------------------------------------------------------------

    def _load_plan(self) -> None:
        lib = self.session.lib

        def work(job: workers.Job) -> tuple:
            from faceapp.engine import finetune

            return finetune.plan(lib), finetune.FinetuneOptions(), dict(finetune.TRAINABLE)

        workers.run_in_background(
            work, name="finetune-plan", on_finished=self._on_plan, on_failed=self._on_plan_failed
        )

    def _on_plan(self, payload: tuple) -> None:
        plan, defaults, trainable = payload
        self.plan = plan
        self.epochs.setValue(defaults.epochs)
        self.mining.clear()
        for m in ("semihard", "batch-hard"):
            self.mining.addItem(
                {"semihard": "Semi-hard (FaceNet)", "batch-hard": "Batch-hard"}[m], m
            )
        self.mining.setCurrentIndex(max(0, self.mining.findData(defaults.mining)))
        self.trainable.clear()
        for key in trainable:
            self.trainable.addItem(TRAINABLE_LABELS.get(key, key), key)
        self.trainable.setCurrentIndex(max(0, self.trainable.findData(defaults.trainable)))
        self.lr.setValue(defaults.lr)
        self.people_per_batch.setValue(defaults.people_per_batch)
        self.faces_per_person.setValue(defaults.faces_per_person)
        self.people_table.setRowCount(len(plan.people))
        for i, p in enumerate(plan.people):
            for j, value in enumerate((p.name, str(p.train), str(p.heldout))):
                item = QTableWidgetItem(value)
                if j:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.people_table.setItem(i, j, item)
        text = (
            f"<b>{len(plan.people)}</b> people with at least two confirmed faces: "
            f"<b>{plan.train_faces:,}</b> faces to train on, "
            f"<b>{plan.heldout_faces:,}</b> held out to measure the result."
        )
        if plan.skipped_people:
            text += f" {plan.skipped_people} people with a single face are left out."
        if not plan.can_train:
            text += f"<br><span style='color:#b91c1c'>Cannot train yet: {plan.reason}</span>"
        for w in plan.warnings:
            text += f"<br><span style='color:#b45309'>{w}</span>"
        self.plan_label.setText(text)
        self.state = "ready" if plan.can_train else "blocked"
        self.status.setText("Ready." if plan.can_train else "Confirm more faces first.")
        self._update_buttons()

    def _on_plan_failed(self, exc: BaseException) -> None:
        self.plan_label.setText(f"Fine-tuning is not available: {exc}")
        self.state = "blocked"
        self._update_buttons()

    # -- training --------------------------------------------------------------------------

    def options(self) -> Any:
        from faceapp.engine import finetune_plan

        return finetune_plan.options_from(
            epochs=self.epochs.value(),
            mining=self.mining.currentData(),
            trainable=self.trainable.currentData(),
            lr=self.lr.value(),
            people_per_batch=self.people_per_batch.value(),
            faces_per_person=self.faces_per_person.value(),
            device=self.session.settings.device,
        )

    def start_training(self) -> None:
        if self.state not in ("ready", "trained") or self.plan is None:
            return
        if self.result is not None:
            self.discard_result(quiet=True)
        lib, options, plan = self.session.lib, self.options(), self.plan
        self.chart.clear()
        self._last_epoch_plotted = -1
        self.table.clearContents()
        self.verdict.clear()

        def work(job: workers.Job) -> Any:
            from faceapp.engine import finetune

            return finetune.train(
                lib, options, progress=job.report, cancel=job.is_cancelled, the_plan=plan
            )

        job = workers.Job(work, name="finetune", progress_interval=0.1)
        job.signals.progress.connect(self._on_train_progress)
        job.signals.finished.connect(self._on_trained)
        job.signals.failed.connect(self._on_failed)
        self.job = job
        self.state = "training"
        self.status.setText("Preparing the faces…")
        self.progress.setRange(0, 0)
        self._update_buttons()
        workers.start(job)

    def _on_train_progress(self, p: Any) -> None:
        if p.stage == "prepare":
            self.progress.setRange(0, max(1, p.steps))
            self.progress.setValue(p.step)
            self.status.setText(f"Preparing faces {p.step:,} / {p.steps:,}")
        else:
            total = max(1, p.epochs * max(1, p.steps))
            self.progress.setRange(0, total)
            self.progress.setValue((p.epoch - 1) * p.steps + p.step)
            loss = "—" if p.loss is None else f"{p.loss:.4f}"
            self.status.setText(
                f"Epoch {p.epoch} of {p.epochs} (at most)  ·  loss {loss}  ·  "
                f"{format_duration(p.eta)} left"
            )
            if p.loss is not None and p.steps:
                self.chart.add_point("training loss", p.epoch - 1 + p.step / p.steps, p.loss)
        if p.heldout is not None:
            # The held-out metric belongs to the last finished epoch (0 = before training).
            if p.stage != "train" or p.epoch == 0:
                done_epoch = 0
            else:
                done_epoch = p.epoch if p.step >= p.steps else p.epoch - 1
            if done_epoch > self._last_epoch_plotted:
                self._last_epoch_plotted = done_epoch
                self.chart.add_point("held-out VAL", done_epoch, p.heldout.val)

    def _on_trained(self, result: Any) -> None:
        self.job = None
        self.result = result
        self.state = "trained"
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        for j, m in enumerate((result.before, result.after)):
            for i, (_label, key, fmt) in enumerate(METRIC_ROWS):
                item = QTableWidgetItem(_metric(m, key, fmt))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(i, j, item)
        how = {
            "early-stop": "stopped early (no further gain)",
            "max-epochs": "ran all epochs",
            "cancelled": "stopped by you",
        }.get(result.stopped, result.stopped)
        if result.state_dict is None:
            self.verdict.setText("Training was stopped before a model was trained.")
        elif result.improved:
            self.verdict.setText(
                f"<b style='color:#15803d'>The fine-tuned model is better</b> on held-out faces "
                f"(best epoch {result.best_epoch}, {how}, {format_duration(result.seconds)}). "
                "Accept it to re-embed every face with it; the current version stays available."
            )
        else:
            self.verdict.setText(
                f"<b style='color:#b45309'>The fine-tuned model is not better</b> than the current "
                f"one ({how}). Discarding it is recommended; you may still accept it."
            )
        self.status.setText("Training finished.")
        self._update_buttons()
        self.trainingFinished.emit(result)

    def _on_failed(self, exc: BaseException) -> None:
        self.job = None
        self.state = "ready" if self.result is None else "trained"
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText(f"Failed: {exc}")
        self._update_buttons()

    def stop_job(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Stopping…")
            self.stop.setEnabled(False)

    # -- accept / discard --------------------------------------------------------------------

    def accept_result(self) -> None:
        if self.result is None or self.result.state_dict is None or self.state != "trained":
            return
        lib, result, device = self.session.lib, self.result, self.session.settings.device
        params = self.session.cluster_params()

        def work(job: workers.Job) -> Any:
            from faceapp.engine import finetune

            return finetune.accept(
                lib,
                result,
                progress=job.report,
                cancel=job.is_cancelled,
                device=device,
                params=params,
            )

        job = workers.Job(work, name="finetune-accept", progress_interval=0.1)
        job.signals.progress.connect(self._on_accept_progress)
        job.signals.finished.connect(self._on_accepted)
        job.signals.failed.connect(self._on_failed)
        self.job = job
        self.state = "accepting"
        self.status.setText("Saving the new model…")
        self._update_buttons()
        workers.start(job)

    def _on_accept_progress(self, p: Any) -> None:
        names = {
            "save": "Saving the model",
            "embed": "Re-embedding every face",
            "calibrate": "Calibrating the threshold",
            "switch": "Switching to the new model",
            "cluster": "Regrouping the faces",
        }
        self.progress.setRange(0, max(1, p.total))
        self.progress.setValue(p.done)
        eta = f"  ·  {format_duration(p.eta)} left" if p.eta else ""
        self.status.setText(f"{names.get(p.stage, p.stage)} {p.done:,} / {p.total:,}{eta}")

    def _on_accepted(self, report: Any) -> None:
        self.job = None
        if report.cancelled or not report.activated:
            self.state = "trained"
            self.status.setText("Accepting was stopped; the current model stays active.")
            self._update_buttons()
            return
        self.state = "done"
        self.result = None
        thr = "" if report.threshold is None else f" (threshold {report.threshold:.3f})"
        self.status.setText(f"New model version {report.model_id} is active{thr}.")
        self.verdict.setText(
            "Every face now uses the fine-tuned model and was regrouped with it; "
            "your names and confirmed faces stay as they are."
        )
        self.session.forget_analyzer()
        self.session.changed.emit()
        self.session.message.emit(f"Fine-tuned model version {report.model_id} is now in use.")
        self._update_buttons()
        self.accepted_version.emit(report)

    def discard_result(self, quiet: bool = False) -> None:
        if self.result is None:
            return
        from faceapp.engine import finetune

        finetune.discard(self.result)
        self.result = None
        self.state = "ready"
        if not quiet:
            self.status.setText("Discarded; the current model stays in use.")
            self.verdict.clear()
        self._update_buttons()

    # -- state ----------------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        busy = self.state in ("training", "accepting")
        self.start.setEnabled(self.state in ("ready", "trained"))
        self.start.setText("Train Again" if self.state == "trained" else "Start")
        self.start.setProperty("primary", self.state == "ready")
        self.start.style().unpolish(self.start)
        self.start.style().polish(self.start)
        self.stop.setEnabled(busy)
        has_model = self.result is not None and getattr(self.result, "state_dict", None) is not None
        self.accept_button.setEnabled(self.state == "trained" and has_model)
        self.accept_button.setProperty("primary", bool(has_model and self.result.improved))
        self.accept_button.style().unpolish(self.accept_button)
        self.accept_button.style().polish(self.accept_button)
        self.discard_button.setEnabled(self.state == "trained" and self.result is not None)
        for w in (
            self.epochs,
            self.mining,
            self.trainable,
            self.lr,
            self.people_per_batch,
            self.faces_per_person,
        ):
            w.setEnabled(not busy and self.state != "blocked")

    def closeEvent(self, event: Any) -> None:
        if self.job is not None:
            self.job.cancel()
        super().closeEvent(event)
