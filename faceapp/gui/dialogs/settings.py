"""Preferences: device, weights, threshold, grouping, library location.

Grouping is one "looser … stricter" control in plain words (the engine's
grouping levels); the clustering internals it moves, and the others, are under
"Advanced".
"""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from faceapp import config
from faceapp.engine.library import DEFAULT_THRESHOLD
from faceapp.gui import workers
from faceapp.gui.settings import AppSettings

GROUPING_WORDS = {
    -2: "Much looser: fewer, bigger groups; more wrong faces in them.",
    -1: "Looser: people seen a few times are grouped more often.",
    0: "Balanced: the setting chosen on thousands of real faces.",
    1: "Stricter: purer groups; more faces wait in Unsorted.",
    2: "Much stricter: only very sure groups; a person may be split in several.",
}

DEVICES = [("auto", "Automatic (CUDA when available)"), ("cpu", "CPU"), ("cuda", "CUDA GPU")]


def humanize(name: str) -> str:
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


# Engine parameters a user may reasonably change, with a line of help each; the rest
# (seeds, thread counts, algorithm switch-over sizes) stay at the engine's values.
CLUSTER_HELP = {
    "min_cluster_size": "Fewest faces that form a group; smaller finds rarer people.",
    "min_samples": "Higher is more conservative: more faces stay unsorted.",
    "pca_dims": "Dimensions kept before clustering (0 keeps all 512).",
    "selection_method": "eom prefers large groups; leaf splits them more finely.",
    "selection_epsilon": "Groups closer than this are merged (0: off).",
    "attach_ratio": "Unsorted faces join a close group under this share of the threshold.",
    "merge_ratio": "Groups merge when their centres are this close (0: off).",
    "algorithm": "exact uses the hdbscan package; knn scales to very large libraries.",
    "knn": "Neighbours per face in the knn algorithm.",
}
CLUSTER_LABELS = {
    "min_cluster_size": "Smallest group",
    "min_samples": "Min samples",
    "pca_dims": "PCA dimensions",
    "selection_method": "Selection method",
    "selection_epsilon": "Selection epsilon",
    "attach_ratio": "Attach unsorted faces",
    "merge_ratio": "Merge close groups",
    "pair_ratio": "Small groups of 2-3",
    "hold_likely": "Known people wait in Review",
    "algorithm": "Algorithm",
    "knn": "Neighbours (knn)",
    "min_face_px": "Smallest face to group (px)",
}
CLUSTER_CHOICES = {"selection_method": ["eom", "leaf"], "algorithm": ["auto", "exact", "knn"]}
CLUSTER_HIDDEN = {"seed", "n_jobs", "exact_limit"}


def cluster_param_fields() -> list[tuple[str, type, Any, str]]:
    """(name, type, default, help) of the engine's ClusterParams that a form can edit."""
    try:
        from faceapp.engine import cluster
    except Exception:
        return []
    cls = getattr(cluster, "ClusterParams", None)
    if cls is None or not is_dataclass(cls):
        return []
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        if f.default_factory is not MISSING:  # type: ignore[misc]
            continue
        kind = type(default) if default is not None else None
        if kind not in (int, float, bool, str) or f.name in CLUSTER_HIDDEN:
            continue
        help_text = str(f.metadata.get("help", "")) or CLUSTER_HELP.get(f.name, "")
        out.append((f.name, kind, default, help_text))
    return out


class PathField(QWidget):
    """A line edit with Browse… (file or folder)."""

    def __init__(self, *, folder: bool, placeholder: str, filter: str = "") -> None:
        super().__init__()
        self.folder = folder
        self.filter = filter
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setClearButtonEnabled(True)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)

    def _browse(self) -> None:
        if self.folder:
            path = QFileDialog.getExistingDirectory(self, "Choose a folder", self.edit.text())
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "Choose a file", self.edit.text(), self.filter
            )
        if path:
            self.edit.setText(path)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None


class SettingsDialog(QDialog):
    def __init__(
        self,
        settings: AppSettings,
        *,
        model_threshold: tuple[float, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(640)
        self.settings = settings
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(10)

        engine = QGroupBox("Face recognition")
        form = QFormLayout(engine)
        self.device = QComboBox()
        for value, label in DEVICES:
            self.device.addItem(label, value)
        self.device.setCurrentIndex(max(0, [v for v, _ in DEVICES].index(settings.device)))
        self.weights = PathField(
            folder=False,
            placeholder="Automatic (VGGFace2 if present, else the offline CASIA-WebFace)",
            filter="PyTorch state dict (*.pt *.pth);;All files (*)",
        )
        if settings.weights_path:
            self.weights.edit.setText(str(settings.weights_path))
        self.own_threshold = QCheckBox("Use my own verification threshold")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.05, 4.0)
        self.threshold.setSingleStep(0.01)
        self.threshold.setDecimals(3)
        default_thr = model_threshold[0] if model_threshold else DEFAULT_THRESHOLD
        self.threshold.setValue(settings.threshold or default_thr)
        self.own_threshold.setChecked(settings.threshold is not None)
        self.threshold.setEnabled(settings.threshold is not None)
        self.own_threshold.toggled.connect(self.threshold.setEnabled)
        thr_row = QHBoxLayout()
        thr_row.addWidget(self.own_threshold)
        thr_row.addWidget(self.threshold)
        thr_row.addStretch(1)
        thr_note = QLabel(
            f"Calibrated threshold of the current model: {model_threshold[0]:.3f} "
            f"({model_threshold[1]}). Squared distance below it means the same person."
            if model_threshold
            else "Without an override, Verify uses the threshold calibrated for the weights."
        )
        thr_note.setObjectName("muted")
        thr_note.setWordWrap(True)
        self.download = QPushButton("Download VGGFace2 Weights")
        self.download.setToolTip(
            "facenet-pytorch's VGGFace2 weights (~110 MB). The app never goes online"
            " unless you press this; offline it uses the CASIA-WebFace weights it ships."
        )
        self.download.clicked.connect(self.start_download)
        self.download_status = QLabel("Used for new libraries once downloaded.")
        self.download_status.setObjectName("muted")
        self.download_status.setWordWrap(True)
        self.downloaded = False
        download_row = QHBoxLayout()
        download_row.addWidget(self.download)
        download_row.addWidget(self.download_status, 1)
        form.addRow("Device:", self.device)
        form.addRow("Weights file:", self.weights)
        form.addRow("Online weights:", download_row)
        form.addRow("Threshold:", thr_row)
        layout.addWidget(engine)
        layout.addWidget(thr_note)

        grouping = QGroupBox("Grouping faces")
        gcol = QVBoxLayout(grouping)
        slider_row = QHBoxLayout()
        self.grouping = QSlider(Qt.Orientation.Horizontal)
        self.grouping.setRange(-2, 2)
        self.grouping.setPageStep(1)
        self.grouping.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.grouping.setTickInterval(1)
        self.grouping.setAccessibleName("Grouping: looser or stricter")
        slider_row.addWidget(QLabel("Looser"))
        slider_row.addWidget(self.grouping, 1)
        slider_row.addWidget(QLabel("Stricter"))
        self.grouping_words = QLabel()
        self.grouping_words.setObjectName("muted")
        self.grouping_words.setWordWrap(True)
        gcol.addLayout(slider_row)
        gcol.addWidget(self.grouping_words)
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setAutoRaise(True)
        gcol.addWidget(self.advanced_button)
        layout.addWidget(grouping)

        clustering = QGroupBox("Advanced: clustering internals")
        cform = QFormLayout(clustering)
        self.cluster_widgets: dict[str, tuple[type, QWidget, Any]] = {}
        current = settings.cluster_options
        params = cluster_param_fields()
        for name, kind, default, help_text in params:
            value = current.get(name, default)
            if kind is bool:
                w: QWidget = QCheckBox()
                w.setChecked(bool(value))
            elif kind is int:
                w = QSpinBox()
                w.setRange(0, 100_000)
                w.setValue(int(value))
            elif kind is float:
                w = QDoubleSpinBox()
                w.setDecimals(3)
                w.setRange(-1e6, 1e6)
                w.setSingleStep(0.01)
                w.setValue(float(value))
            elif name in CLUSTER_CHOICES:
                w = QComboBox()
                w.addItems(CLUSTER_CHOICES[name])
                w.setCurrentText(str(value))
            else:
                w = QLineEdit(str(value))
            if help_text:
                w.setToolTip(help_text)
            cform.addRow(CLUSTER_LABELS.get(name, humanize(name)) + ":", w)
            self.cluster_widgets[name] = (kind, w, default)
        if not params:
            note = QLabel("The clustering options appear once the clustering engine is installed.")
            note.setObjectName("muted")
            cform.addRow(note)
        # The internals scroll, so the dialog fits a laptop screen with them open.
        self.advanced = QScrollArea()
        self.advanced.setWidget(clustering)
        self.advanced.setWidgetResizable(True)
        self.advanced.setFrameShape(QScrollArea.Shape.NoFrame)
        self.advanced.setFixedHeight(300)
        layout.addWidget(self.advanced, 1)
        self.advanced.setVisible(False)
        self.advanced_button.toggled.connect(self._show_advanced)
        self._sync_grouping()
        self.grouping.valueChanged.connect(self._grouping_moved)
        for _kind, w, _default in self.cluster_widgets.values():
            signal = getattr(w, "valueChanged", None)
            if signal is not None:
                signal.connect(self._sync_grouping)

        library = QGroupBox("Libraries")
        lform = QFormLayout(library)
        self.library_dir = PathField(folder=True, placeholder=str(config.data_dir() / "libraries"))
        if settings.library_dir:
            self.library_dir.edit.setText(str(settings.library_dir))
        self.rescan = QCheckBox("Look for new photos when a library is opened")
        self.rescan.setChecked(settings.rescan_on_open)
        lib_note = QLabel(
            "New libraries are created in this folder; existing ones stay where they are. "
            "Photos are never copied or changed."
        )
        lib_note.setObjectName("muted")
        lib_note.setWordWrap(True)
        lform.addRow("Location:", self.library_dir)
        lform.addRow("", self.rescan)
        layout.addWidget(library)
        layout.addWidget(lib_note)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.restore_defaults = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.restore_defaults.setToolTip("Grouping back to balanced, the internals to defaults")
        self.restore_defaults.clicked.connect(self._reset_cluster)
        self.restore_defaults.setEnabled(bool(params))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def start_download(self) -> workers.Job:
        """Fetch the VGGFace2 checkpoint in a worker (no-op when it is already there)."""

        def work(job: workers.Job) -> str:
            from faceapp.engine import weights

            found = weights.vggface2_weights() or weights.download_vggface2()
            return f"VGGFace2 weights ready ({found.file}); used for new libraries."

        self.download.setEnabled(False)
        self.download_status.setText("Downloading…")
        return workers.run_in_background(
            work, name="download", on_finished=self._downloaded, on_failed=self._download_failed
        )

    def _downloaded(self, text: str) -> None:
        self.downloaded = True
        self.download_status.setText(text)

    def _download_failed(self, exc: BaseException) -> None:
        self.download.setEnabled(True)
        text = str(exc) or type(exc).__name__
        self.download_status.setText(text[:1].upper() + text[1:])

    def _show_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        arrow = Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        self.advanced_button.setArrowType(arrow)
        self.layout().activate()
        self.resize(self.width(), self.layout().sizeHint().height())

    def _params(self) -> Any:
        """The engine's ClusterParams with the values in the form."""
        from faceapp.engine.cluster import ClusterParams

        return ClusterParams(**self.cluster_values())

    def _grouping_moved(self, level: int) -> None:
        """Set the internals that the grouping level moves (the others stay)."""
        from faceapp.engine.grouping import grouping_params

        params = grouping_params(level, self._params())
        self._syncing = True
        for name, (kind, w, _default) in self.cluster_widgets.items():
            if kind in (int, float) and hasattr(w, "setValue"):
                w.setValue(getattr(params, name))
        self._syncing = False
        self._sync_grouping()

    def _sync_grouping(self, *_: Any) -> None:
        """The slider and its words follow the internals (custom values: said so)."""
        if getattr(self, "_syncing", False) or not self.cluster_widgets:
            self.grouping_words.setText(GROUPING_WORDS[self.grouping.value()])
            return
        from faceapp.engine.grouping import grouping_level

        level = grouping_level(self._params())
        if level is None:
            self.grouping_words.setText("Custom: set under Advanced.")
            return
        self.grouping.blockSignals(True)
        self.grouping.setValue(level)
        self.grouping.blockSignals(False)
        self.grouping_words.setText(GROUPING_WORDS[level])

    def _reset_cluster(self) -> None:
        for _name, (kind, w, default) in self.cluster_widgets.items():
            if kind is bool:
                w.setChecked(bool(default))  # type: ignore[attr-defined]
            elif kind in (int, float):
                w.setValue(default)  # type: ignore[attr-defined]
            elif isinstance(w, QComboBox):
                w.setCurrentText(str(default))
            else:
                w.setText(str(default))  # type: ignore[attr-defined]

    def cluster_values(self) -> dict[str, Any]:
        """Only values that differ from the engine defaults are stored."""
        out: dict[str, Any] = {}
        for name, (kind, w, default) in self.cluster_widgets.items():
            if kind is bool:
                value: Any = w.isChecked()  # type: ignore[attr-defined]
            elif kind in (int, float):
                value = kind(w.value())  # type: ignore[attr-defined]
            elif isinstance(w, QComboBox):
                value = w.currentText()
            else:
                value = w.text()  # type: ignore[attr-defined]
            if value != default:
                out[name] = value
        return out

    def save(self) -> dict[str, bool]:
        """Write to QSettings; says what changed so the window can react."""
        s = self.settings
        old = (s.device, s.weights_path, s.threshold, s.cluster_options)
        s.device = self.device.currentData()
        s.weights_path = self.weights.path()
        s.threshold = self.threshold.value() if self.own_threshold.isChecked() else None
        s.cluster_options = self.cluster_values()
        s.library_dir = self.library_dir.path()
        s.rescan_on_open = self.rescan.isChecked()
        s.sync()
        return {
            "engine": (s.device, s.weights_path) != old[:2] or self.downloaded,
            "threshold": s.threshold != old[2],
            "clustering": s.cluster_options != old[3],
        }
