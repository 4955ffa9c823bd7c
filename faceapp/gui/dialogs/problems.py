"""The files a scan could not use: file, reason, when; "Try Again" reads them again."""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def when_text(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


class ProblemsDialog(QDialog):
    """Lists the engine's scan problems; Try Again asks the window to retry in a worker."""

    retryRequested = Signal(list)  # relative paths (all listed when none is selected)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Problems")
        self.resize(760, 380)
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["File", "Reason", "When"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(0, 240)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.try_again = buttons.addButton("Try Again", QDialogButtonBox.ButtonRole.ActionRole)
        self.try_again.setToolTip("Read the selected files again (all of them when none is)")
        self.try_again.clicked.connect(self._retry)
        buttons.rejected.connect(self.reject)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.problems: list[Any] = []

    def set_problems(self, problems: list[Any], busy: bool = False) -> None:
        self.problems = list(problems)
        self.table.setRowCount(len(self.problems))
        for row, p in enumerate(self.problems):
            for col, text in enumerate((p.path, p.reason, when_text(p.when))):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, col, item)
        n = len(self.problems)
        self.summary.setText(
            f"{n} {'file' if n == 1 else 'files'} could not be used. Fix or replace "
            f"{'it' if n == 1 else 'them'}, then Try Again; the rest of the library is not "
            "affected."
            if n
            else "Every file in the folder could be read."
        )
        self.try_again.setEnabled(bool(n) and not busy)

    def _retry(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        paths = [self.problems[r].path for r in rows] or [p.path for p in self.problems]
        self.try_again.setEnabled(False)
        self.retryRequested.emit(paths)
