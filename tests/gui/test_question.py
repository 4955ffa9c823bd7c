"""The yes/no question asked before merging people, removing a model version, quitting."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from faceapp.gui.dialogs.question import ask_yes_no


def answer_with(qtbot, key: Qt.Key | None, button: QMessageBox.StandardButton | None) -> list:
    """Answer the next message box with a key press or a click; returns its texts."""
    seen: list = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append((box.windowTitle(), box.text()))
        if button is not None:
            box.button(button).click()
        else:
            qtbot.keyClick(box, key)

    QTimer.singleShot(0, answer)
    return seen


@pytest.mark.parametrize(
    ("key", "button", "expected"),
    [
        (None, QMessageBox.StandardButton.Yes, True),
        (None, QMessageBox.StandardButton.No, False),
        (Qt.Key.Key_Return, None, False),  # No is the default: Enter does not merge
        (Qt.Key.Key_Escape, None, False),
    ],
)
def test_only_yes_answers_yes(qtbot, key, button, expected):
    parent = QWidget()
    qtbot.addWidget(parent)
    seen = answer_with(qtbot, key, button)
    assert ask_yes_no(parent, "Merge People", "Merge “Anna” into “Ben”?") is expected
    assert seen == [("Merge People", "Merge “Anna” into “Ben”?")]
