"""First screen: what the app does, "Open Photo Folder…", and recent libraries."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui.resources import icon
from faceapp.gui.settings import RecentLibrary


class WelcomeView(QWidget):
    openFolderClicked = Signal()
    recentChosen = Signal(object)  # RecentLibrary

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self._last_open = 0.0
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        row = QHBoxLayout()
        row.addStretch(1)
        column = QVBoxLayout()
        column.setSpacing(12)
        logo = QLabel()
        logo.setPixmap(icon("app").pixmap(QSize(72, 72)))
        title = QLabel("Face Album")
        title.setObjectName("welcomeTitle")
        text = QLabel(
            "Choose a folder of photos. Face Album finds every face, groups the faces "
            "by person and lets you name them. Your photos are never changed or uploaded."
        )
        text.setObjectName("welcomeText")
        text.setWordWrap(True)
        self.open_button = QPushButton(icon("open-white"), "  Open Photo Folder…")
        self.open_button.setProperty("primary", True)
        self.open_button.setMinimumHeight(38)
        self.open_button.setIconSize(QSize(18, 18))
        self.open_button.setShortcut("")  # Ctrl+O lives on the menu action
        self.open_button.setToolTip("Open a folder of photos (Ctrl+O)")
        self.open_button.clicked.connect(self.openFolderClicked)
        recent_label = QLabel("Recent libraries")
        recent_label.setObjectName("sectionLabel")
        self.recent_list = QListWidget()
        self.recent_list.setObjectName("recentList")
        self.recent_list.setIconSize(QSize(20, 20))
        self.recent_list.itemActivated.connect(self._on_item)
        self.recent_list.itemClicked.connect(self._on_item)
        self.no_recent = QLabel("No recent libraries yet: open a folder to begin.")
        self.no_recent.setObjectName("muted")
        column.addWidget(logo)
        column.addWidget(title)
        column.addWidget(text)
        column.addSpacing(8)
        column.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignLeft)
        column.addSpacing(18)
        column.addWidget(recent_label)
        column.addWidget(self.recent_list)
        column.addWidget(self.no_recent)
        holder = QWidget()
        holder.setLayout(column)
        holder.setFixedWidth(520)
        row.addWidget(holder)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(3)

    def set_recent(self, items: list[RecentLibrary]) -> None:
        self.recent_list.clear()
        for item in items:
            folder = Path(item.folder)
            entry = QListWidgetItem(icon("folder"), f"{folder.name}\n{folder.parent}")
            entry.setData(Qt.ItemDataRole.UserRole, item)
            entry.setToolTip(f"Folder: {item.folder}\nLibrary: {item.library}")
            self.recent_list.addItem(entry)
        rows = min(len(items), 5)
        row_height = self.recent_list.sizeHintForRow(0) if items else 0
        self.recent_list.setFixedHeight(rows * row_height + 12 if items else 0)
        self.recent_list.setVisible(bool(items))
        self.no_recent.setVisible(not items)

    def _on_item(self, item: QListWidgetItem) -> None:
        # A double-click is a click plus an activation: open once.
        now = time.monotonic()
        if now - self._last_open < 0.8:
            return
        self._last_open = now
        self.recentChosen.emit(item.data(Qt.ItemDataRole.UserRole))
