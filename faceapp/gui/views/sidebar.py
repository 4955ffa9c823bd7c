"""The sidebar: people, clusters, unsorted and hidden faces; a drop target for merges and moves."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QDragMoveEvent, QDropEvent, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QListView, QVBoxLayout, QWidget

from faceapp.gui.delegates import GroupDelegate
from faceapp.gui.groups import GroupKey
from faceapp.gui.models import Role, SidebarModel


class SidebarView(QListView):
    groupSelected = Signal(object)  # GroupKey or None
    renameRequested = Signal(object)  # GroupKey
    peopleSelected = Signal(list)  # two or more person GroupKeys: their photos together

    def __init__(self, model: SidebarModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._remembered: GroupKey | None = None
        self._restoring = False
        self.setObjectName("sidebar")
        self.setModel(model)
        self.delegate = GroupDelegate(self)
        self.setItemDelegate(self.delegate)
        # Ctrl/Shift-click selects several people: the photos they are in together.
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMouseTracking(True)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(False)  # the delegate highlights the target row
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setMinimumWidth(220)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        model.modelAboutToBeReset.connect(self._remember)
        model.modelReset.connect(self._restore)

    def sidebar_model(self) -> SidebarModel:
        return self.model()  # type: ignore[return-value]

    # -- selection ----------------------------------------------------------------------

    def current_key(self) -> GroupKey | None:
        return self.sidebar_model().key_at(self.currentIndex())

    def select_key(self, key: GroupKey | None) -> bool:
        model = self.sidebar_model()
        row = model.row_of(key) if key is not None else -1
        if row < 0:
            return False
        index = model.index(row)
        self.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self.scrollTo(index)
        return True

    def select_first(self) -> None:
        row = self.sidebar_model().first_group_row()
        if row >= 0:
            self.select_key(self.sidebar_model().key_at(self.sidebar_model().index(row)))

    def selected_people(self) -> list[GroupKey]:
        model = self.sidebar_model()
        keys = [model.key_at(i) for i in self.selectionModel().selectedIndexes()]
        return [k for k in keys if k is not None and k.kind.is_person]

    def selectionChanged(self, selected: object, deselected: object) -> None:
        super().selectionChanged(selected, deselected)
        people = self.selected_people()
        if len(people) >= 2 and not self._restoring:
            self.peopleSelected.emit(people)

    def _remember(self) -> None:
        self._remembered = self.current_key()
        self._restoring = True

    def _restore(self) -> None:
        key = self._remembered
        self._restoring = False
        if key is not None and self.select_key(key):
            return
        if key is not None and self.sidebar_model().first_group_row() >= 0:
            self.select_first()  # e.g. a search hid the group shown: show its first match
            return
        self.groupSelected.emit(self.current_key())

    def currentChanged(self, current: QModelIndex, previous: QModelIndex) -> None:
        super().currentChanged(current, previous)
        if not self._restoring:
            key = self.sidebar_model().key_at(current)
            if key != self.sidebar_model().key_at(previous):
                self.groupSelected.emit(key)

    # -- mouse and keys -------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        if index.isValid() and index.data(Role.KIND) == "header":
            self.sidebar_model().toggle_section(index.data(Role.SECTION))
            return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        key = self.sidebar_model().key_at(index)
        if key is not None and key.kind.can_name:
            self.renameRequested.emit(key)
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            key = self.current_key()
            if key is not None and key.kind.can_name:
                self.renameRequested.emit(key)
                return
        super().keyPressEvent(event)

    # -- drop highlighting ----------------------------------------------------------------

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        super().dragMoveEvent(event)
        index = self.indexAt(event.position().toPoint())
        model = self.sidebar_model()
        ok = index.isValid() and model.canDropMimeData(
            event.mimeData(), Qt.DropAction.MoveAction, -1, -1, index
        )
        if ok:
            event.setDropAction(Qt.DropAction.MoveAction)
            event.accept()
        else:
            event.ignore()
        target = index if ok else None
        if target != self.delegate.drop_target:
            self.delegate.drop_target = target
            self.viewport().update()

    def dragLeaveEvent(self, event: object) -> None:
        super().dragLeaveEvent(event)
        self.delegate.drop_target = None
        self.viewport().update()

    def dropEvent(self, event: QDropEvent) -> None:
        self.delegate.drop_target = None
        self.viewport().update()
        index = self.indexAt(event.position().toPoint())
        model = self.sidebar_model()
        if index.isValid() and model.dropMimeData(
            event.mimeData(), Qt.DropAction.MoveAction, -1, -1, index
        ):
            # Accept as a copy so the source view never removes rows itself.
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()


class SidebarPanel(QWidget):
    """The sidebar list with a search field above it that filters people by name."""

    def __init__(self, view: SidebarView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebarPanel")
        self.view = view
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.search = QLineEdit()
        self.search.setObjectName("peopleSearch")
        self.search.setPlaceholderText("Search people")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(view.sidebar_model().set_filter)
        layout.addWidget(self.search)
        layout.addWidget(view, 1)
