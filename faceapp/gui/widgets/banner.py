"""A dismissible message strip at the top of the window (e.g. "no weights found")."""

from __future__ import annotations

from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from faceapp.gui.resources import icon


class Banner(QFrame):
    """Icon, wrapped text, one action button and a close button."""

    actionClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 10, 10)
        layout.setSpacing(10)
        self.icon = QLabel()
        self.icon.setPixmap(icon("warning").pixmap(QSize(22, 22)))
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(self.text.textInteractionFlags())
        self.button = QPushButton()
        self.button.setProperty("primary", True)
        self.button.clicked.connect(self.actionClicked)
        close = QToolButton()
        close.setIcon(icon("cancel"))
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str, action: str = "") -> None:
        self.text.setText(text)
        self.button.setText(action)
        self.button.setVisible(bool(action))
        self.show()
