"""The error message box: the reason, and the way to the details.

A failed job's traceback is in the log file (faceapp/logsetup.py). When the message
follows such a failure, the traceback is the box's details ("Show Details..."), and
"Open Log" opens the file itself, for a bug report.
"""

from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from faceapp.logsetup import log_file, take_recent_failure


def error_box(parent: QWidget, title: str, text: str, details: str | None = None) -> QMessageBox:
    """A warning box for ``text``, with ``details`` (default: the recent traceback) under
    "Show Details…" and "Open Log"."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    details = details or take_recent_failure()
    if details:
        box.setDetailedText(details)
    path = log_file()
    if path.is_file():
        button = box.addButton("Open Log", QMessageBox.ButtonRole.ActionRole)
        button.setToolTip(str(path))
        # ActionRole buttons would close the box; opening the log should not.
        button.clicked.disconnect()
        button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))))
    return box
