"""The face grid: one group's faces as thumbnails, multi-select, drag to the sidebar."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QPushButton,
    QStackedWidget,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui.delegates import FaceDelegate
from faceapp.gui.models import FaceGridModel
from faceapp.gui.resources import icon
from faceapp.gui.views.header import page_with_header
from faceapp.gui.widgets.elided_label import ElidedLabel


class FaceGridView(QListView):
    """QListView in icon mode with uniform item sizes: layout is O(1) per row, so 50k is fine."""

    faceActivated = Signal(int)  # face id (double-click / Enter)
    rejectRequested = Signal(list)  # face ids (Delete)

    def __init__(self, model: FaceGridModel, thumb_size: int = 112, parent: QWidget | None = None):
        super().__init__(parent)
        self._remembered: set[int] = set()
        self.empty_text = "No faces here."
        self.setObjectName("faceGrid")
        self.setModel(model)
        self.delegate = FaceDelegate(thumb_size, self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setUniformItemSizes(True)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setWrapping(True)
        self.setSpacing(0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setMouseTracking(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setContentsMargins(12, 12, 12, 12)
        self.setViewportMargins(12, 8, 12, 8)
        self.empty_text = "No faces here."
        model.modelAboutToBeReset.connect(self._remember)
        model.modelReset.connect(self._restore)

    def grid_model(self) -> FaceGridModel:
        return self.model()  # type: ignore[return-value]

    def set_thumb_size(self, size: int) -> None:
        self.delegate.size = size
        self.setIconSize(QSize(size, size))
        self.scheduleDelayedItemsLayout()
        self.viewport().update()

    def selected_face_ids(self) -> list[int]:
        model = self.grid_model()
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        return [model.face_at(r) for r in rows]

    def select_faces(self, face_ids: list[int]) -> None:
        model = self.grid_model()
        sel = self.selectionModel()
        sel.clearSelection()
        first = None
        for fid in face_ids:
            row = model.row_of(fid)
            if row >= 0:
                index = model.index(row)
                sel.select(index, QItemSelectionModel.SelectionFlag.Select)
                first = first or index
        if first is not None:
            sel.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)

    def _remember(self) -> None:
        self._remembered = set(self.selected_face_ids())

    def _restore(self) -> None:
        if self._remembered:
            self.select_faces(sorted(self._remembered, key=self.grid_model().row_of))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        if index.isValid():
            self.faceActivated.emit(self.grid_model().face_at(index.row()))
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.faceActivated.emit(self.grid_model().face_at(self.currentIndex().row()))
            return
        super().keyPressEvent(event)

    def paintEvent(self, event: object) -> None:
        if self.model() is not None and self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(
                self.viewport().rect().adjusted(24, 24, -24, -24),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.empty_text,
            )
            painter.end()
            return
        super().paintEvent(event)


class GridPage(QWidget):
    """Header (group name, count, actions) above the face grid."""

    FACES, PHOTOS = 0, 1

    def __init__(
        self, grid: FaceGridView, photos: QWidget | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.grid = grid
        self.photos = photos
        layout, row = page_with_header(self)
        row.setSpacing(8)
        titles = QVBoxLayout()
        titles.setSpacing(2)
        self.title = ElidedLabel()
        self.title.setObjectName("groupTitle")
        self.subtitle = ElidedLabel()
        self.subtitle.setObjectName("groupSubtitle")
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        row.addLayout(titles, 1)
        self.name_button = QPushButton(icon("name"), "Name…")
        self.hide_button = QPushButton(icon("hidden"), "Hide")
        self.reject_button = QPushButton(icon("reject"), "Not This Person")
        self.review_button = QPushButton(icon("review"), "Review")
        for b in (self.reject_button, self.name_button, self.hide_button, self.review_button):
            row.addWidget(b)
        # A person's page: their faces, or the photos they are in (by date).
        self.tabs = QTabBar()
        self.tabs.setObjectName("pageTabs")
        self.tabs.addTab("Faces")
        self.tabs.addTab("Photos")
        self.tabs.setDrawBase(False)
        self.stack = QStackedWidget()
        self.stack.addWidget(grid)
        if photos is not None:
            self.stack.addWidget(photos)
        self.tabs.currentChanged.connect(self.stack.setCurrentIndex)
        layout.addWidget(self.tabs)
        layout.addWidget(self.stack, 1)
        self.tabs.hide()

    def set_tabs(self, shown: bool, index: int | None = None, faces: bool = True) -> None:
        """Show the Faces / Photos tabs (a person) or only the faces (other groups);
        ``faces=False``: several people together have photos only."""
        self.tabs.setVisible(shown)
        self.tabs.setTabEnabled(self.FACES, faces)
        if index is not None:
            self.tabs.setCurrentIndex(index)
        elif not shown:
            self.tabs.setCurrentIndex(self.FACES)
        self.stack.setCurrentIndex(self.tabs.currentIndex())

    def set_header(self, title: str, subtitle: str) -> None:
        self.title.setText(title)
        self.subtitle.setText(subtitle)
