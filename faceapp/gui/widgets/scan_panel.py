"""The strip that shows a running scan (done/total, faces, ETA, Cancel) or clustering."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from faceapp.gui.resources import icon


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = max(0, round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ScanPanel(QFrame):
    cancelClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scanPanel")
        grid = QGridLayout(self)
        grid.setContentsMargins(16, 10, 12, 10)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(6)
        self.title = QLabel("Scanning")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.detail = QLabel()
        self.detail.setObjectName("muted")
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMinimumWidth(200)
        self.cancel = QPushButton(icon("cancel"), "Cancel")
        self.cancel.setToolTip("Stop scanning; the photos done so far are kept")
        self.cancel.clicked.connect(self.cancelClicked)
        grid.addWidget(self.title, 0, 0)
        grid.addWidget(self.detail, 0, 1)
        grid.addWidget(self.cancel, 0, 2, 2, 1)
        grid.addWidget(self.bar, 1, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        self.hide()

    def start_scan(self, folder: Path | None) -> None:
        self.title.setText(f"Scanning {folder.name}" if folder else "Scanning")
        self.detail.setText("Loading the face models…")
        self.bar.setRange(0, 0)
        self.cancel.setEnabled(True)
        self.cancel.show()
        self.show()

    def update_progress(self, p: object) -> None:
        done, total = p.done, p.total  # type: ignore[attr-defined]
        if total:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        else:
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
        eta = format_duration(p.eta) if done else "estimating…"  # type: ignore[attr-defined]
        faces = p.faces  # type: ignore[attr-defined]
        parts = [
            f"{done:,} of {total:,} photos",
            f"{faces:,} {'face' if faces == 1 else 'faces'}",
            f"{eta} left" if done < total else "finishing…",
        ]
        current = getattr(p, "current", "")
        text = "  ·  ".join(parts)
        if current:
            text += f"  ·  {Path(current).name}"
        self.detail.setText(text)

    def cancelling(self) -> None:
        self.cancel.setEnabled(False)
        self.detail.setText("Cancelling after the current photos…")

    def clustering_progress(self, text: object) -> None:
        if isinstance(text, str) and text:
            self.detail.setText(text[:1].upper() + text[1:] + "…")

    def start_clustering(self) -> None:
        self.title.setText("Grouping faces")
        self.detail.setText("Finding people among the faces…")
        self.bar.setRange(0, 0)
        self.cancel.hide()
        self.show()
