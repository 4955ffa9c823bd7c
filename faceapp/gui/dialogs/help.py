"""Help: About Face Album and the keyboard shortcuts (read from the declared actions)."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from faceapp.gui import actions


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About Face Album",
        "<h3>Face Album</h3><p>Finds the faces in a photo folder, groups them by person "
        "and lets you name them. Detection: MTCNN; recognition: FaceNet "
        "(Inception-ResNet-v1, 512-d embeddings, squared L2 distance); grouping: HDBSCAN."
        "</p><p>Everything runs on this computer; photos are never modified.</p>",
    )


def shortcuts_html() -> str:
    rows = actions.shortcut_rows()
    rows += [
        ("Delete (photo view)", "Remove the selected box's face from its group"),
        ("F2 (photo view)", "Name the selected box's person or cluster"),
    ]
    return (
        "<table cellspacing=6>"
        + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
        + "</table><p>Drag a person or cluster onto another to merge them; "
        "drag faces onto a person to move them. Ctrl-click several people for the "
        "photos they are in together.</p>"
    )


def show_shortcuts(parent: QWidget) -> None:
    QMessageBox.information(parent, "Keyboard Shortcuts", shortcuts_html())
