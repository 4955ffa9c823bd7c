"""The window's tools: Verify, Fine-tune, Model Versions, Settings and the weights in use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFileDialog

from faceapp.gui.dialogs import tags as tags_dialogs
from faceapp.gui.dialogs.settings import SettingsDialog
from faceapp.gui.dialogs.verify import VerifyDialog
from faceapp.gui.jobs import weights_label

if TYPE_CHECKING:
    from faceapp.gui.main_window import MainWindow


class ToolsMixin:
    """Verify, fine-tune, settings and weights (mixed into :class:`MainWindow`)."""

    def show_verify(self: MainWindow) -> VerifyDialog:
        if self.verify_dialog is None:
            self.verify_dialog = VerifyDialog(self.session, self)
        self.verify_dialog.show()
        self.verify_dialog.raise_()
        self.verify_dialog.activateWindow()
        return self.verify_dialog

    def verify_faces(self: MainWindow, side: int, face_ids: list[int]) -> None:
        """Put the first of these faces into Verify as photo A (0) or B (1)."""
        if not face_ids or self.session.lib is None:
            return
        row = self.session.lib.face(face_ids[0])
        path = self.session.photo_file(row.photo_path)
        if path is not None:
            self.show_verify().set_photo(side, path, row.box)

    def verify_face(self: MainWindow, side: int) -> None:
        self.verify_faces(side, self.grid.selected_face_ids())

    def show_finetune(self: MainWindow) -> Any:
        if self.session.lib is None:
            return None
        try:
            from faceapp.gui.dialogs.finetune import FineTuneDialog
        except ImportError as exc:
            self.show_error("Fine-tune", f"Fine-tuning is not available: {exc}")
            return None
        if self.finetune_dialog is None or self.finetune_dialog.session_lib is not self.session.lib:
            self.finetune_dialog = FineTuneDialog(self.session, self)
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()
        return self.finetune_dialog

    def show_models(self: MainWindow) -> Any:
        if self.session.lib is None:
            return None
        from faceapp.gui.dialogs.models import ModelsDialog

        if self.models_dialog is None or self.models_dialog.session_lib is not self.session.lib:
            self.models_dialog = ModelsDialog(self.session, self)
        else:
            self.models_dialog.reload()
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def show_write_tags(self: MainWindow) -> None:
        tags_dialogs.open_dialog(self, tags_dialogs.WriteTagsDialog)

    def show_export(self: MainWindow) -> None:
        tags_dialogs.open_dialog(self, tags_dialogs.ExportDialog)

    def show_tag_conflicts(self: MainWindow) -> None:
        tags_dialogs.open_dialog(self, tags_dialogs.ConflictsDialog)

    def show_settings(self: MainWindow) -> SettingsDialog:
        dialog = self.make_settings_dialog()
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog)
        return dialog

    def make_settings_dialog(self: MainWindow) -> SettingsDialog:
        model = None
        lib = self.session.lib
        active = lib.active_model() if lib is not None else None
        if active is not None:
            model = (active.threshold, active.threshold_source)
        elif self.session.weights_info:
            info = self.session.weights_info
            model = (float(info["threshold"]), str(info["threshold_source"]))
        return SettingsDialog(self.settings, model_threshold=model, parent=self)

    def apply_settings(self: MainWindow, dialog: SettingsDialog) -> None:
        changed = dialog.save()
        if changed["engine"]:
            self.session.forget_analyzer()
            self.weights_label.setText("Weights: loading…")
            self.session.probe_weights()
        if changed["clustering"] and self.session.lib is not None:
            self.regroup_when_idle()

    def regroup_when_idle(self: MainWindow) -> None:
        """Regroup with the new grouping setting now, or as soon as the scan is done."""
        if self.session.start_cluster() is None:
            self._regroup_pending = True
            self.statusBar().showMessage(
                "The faces will be regrouped with the new setting when this work is done.", 8000
            )

    # -- problems ------------------------------------------------------------------------

    def show_problem_count(self: MainWindow, problems: list) -> None:
        """The status bar's button says how many files could not be used (hidden at 0)."""
        self.problems = list(problems)
        n = len(self.problems)
        self.problems_button.setText(f"{n} {'problem' if n == 1 else 'problems'}")
        self.problems_button.setVisible(n > 0)
        if self.problems_dialog is not None and self.problems_dialog.isVisible():
            self.problems_dialog.set_problems(self.problems, self.session.busy)

    def show_problems(self: MainWindow) -> Any:
        from faceapp.gui.dialogs.problems import ProblemsDialog

        if self.problems_dialog is None:
            self.problems_dialog = ProblemsDialog(self)
            self.problems_dialog.retryRequested.connect(self.retry_problems)
        self.problems_dialog.set_problems(self.problems, self.session.busy)
        self.problems_dialog.show()
        self.problems_dialog.raise_()
        return self.problems_dialog

    def retry_problems(self: MainWindow, paths: list[str]) -> None:
        """Try Again: read these files again in a worker, like a scan of just them."""
        if self.session.start_scan(retry=paths) is None:
            self.show_error("Try Again", "Wait for the current scan or grouping to finish.")

    # -- weights ------------------------------------------------------------------------

    @Slot(dict)
    def _on_weights_ready(self: MainWindow, info: dict) -> None:
        device = str(info.get("device", "")).upper()
        self.weights_label.setText(f"{weights_label(info.get('source', '?'))} · {device}")
        self.weights_widget.setToolTip(
            f"Weights: {info.get('source')}\nFrom: {info.get('origin')}\n"
            f"SHA-256: {str(info.get('sha256', ''))[:16]}…\n"
            f"Threshold {info.get('threshold')}: {info.get('threshold_source')}"
        )
        if info.get("source") == "random-dev":
            self.banner.show_message(
                "Running with RANDOM development weights: faces will not be recognised.",
                "Choose Weights File…",
            )
        else:
            self.banner.hide()

    @Slot(str)
    def _on_weights_failed(self: MainWindow, text: str) -> None:
        self.weights_label.setText("No weights")
        self.weights_widget.setToolTip(text)
        self.banner.show_message(
            "Face recognition weights could not be loaded, so photos cannot be scanned or "
            f"compared yet.\n{text}",
            "Choose Weights File…",
        )

    def choose_weights(self: MainWindow) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose Weights File",
            str(Path.home()),
            "PyTorch state dict (*.pt *.pth);;All files (*)",
        )
        if path:
            self.use_weights_file(Path(path))

    def use_weights_file(self: MainWindow, path: Path | None) -> None:
        self.settings.weights_path = path
        self.settings.sync()
        self.session.forget_analyzer()
        self.banner.hide()
        self.weights_label.setText("Weights: loading…")
        self.session.probe_weights()
