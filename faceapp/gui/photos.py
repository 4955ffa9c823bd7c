"""The photo view's wiring: show a face's photo, act on a selected box.

A box can be named (new person or one named before), its group renamed (F2),
removed from its group (Delete), or checked in Verify; the photo's folder can
be opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Slot
from PySide6.QtWidgets import QMenu

from faceapp.gui.groups import GroupKind
from faceapp.gui.refresh import CONTENT_GRID, CONTENT_PHOTO
from faceapp.gui.resources import icon
from faceapp.gui.widgets.photo_canvas import FaceMark

if TYPE_CHECKING:
    from faceapp.gui.main_window import MainWindow


class PhotoMixin:
    """The main window's photo view handling (mixed into :class:`MainWindow`)."""

    @Slot(int)
    def show_photo(self: MainWindow, face_id: int) -> None:
        lib = self.session.lib
        if lib is None:
            return
        row = lib.face(face_id)
        path = self.session.photo_file(row.photo_path)
        if path is None:
            return
        names = self.sidebar_model.person_names()
        marks = []
        for f in lib.faces_of_photo(row.photo_id):
            if f.person_id is not None:
                label = GroupKind.PERSON.title(f.person_id, names.get(f.person_id))
            elif f.cluster_id is not None:
                label = GroupKind.CLUSTER.title(f.cluster_id)
            else:
                label = GroupKind.UNKNOWN.title(None)
            marks.append((f.id, FaceMark(f.box, label, f.person_id is not None)))
        self.photo_view.show_photo(path, marks, face_id)
        self.content.setCurrentIndex(CONTENT_PHOTO)
        self.photo_view.canvas.setFocus()
        self._update_actions()

    def show_grid(self: MainWindow) -> None:
        self.content.setCurrentIndex(CONTENT_GRID)
        self.grid.setFocus()
        self._update_actions()

    def selected_box_face(self: MainWindow) -> int | None:
        """The face of the box selected in the photo view, when the photo view is shown."""
        if self.content.currentIndex() != CONTENT_PHOTO:
            return None
        return self.photo_view.selected_face()

    def reject_box(self: MainWindow) -> None:
        face = self.selected_box_face()
        if face is not None:
            self.reject_face(face)

    @Slot(int, QPoint)
    def box_menu(self: MainWindow, face_id: int, pos: QPoint) -> None:
        """The context menu of a face box: name it, its group, not this person, verify."""
        key = self.group_of_face(face_id)
        menu = QMenu(self)
        menu.addAction(icon("person"), "Name This Face…", lambda: self.name_faces_dialog([face_id]))
        if key is not None and key.kind.can_name:
            menu.addAction(
                icon("name"),
                f"{key.kind.name_text[:-1]} “{self._name_of(key)}”…",
                lambda: self.name_group_dialog(key),
            )
        if key is not None and key.kind.can_reject:
            menu.addAction(icon("reject"), key.kind.reject_text, lambda: self.reject_face(face_id))
        menu.addSeparator()
        menu.addAction(icon("verify"), "Verify as Photo A", lambda: self.verify_faces(0, [face_id]))
        menu.addAction(icon("verify"), "Verify as Photo B", lambda: self.verify_faces(1, [face_id]))
        self.exec_menu(menu, pos)

    @Slot(str)
    def reveal_failed(self: MainWindow, folder: str) -> None:
        self.show_error(
            "Open Containing Folder",
            f"No file manager opened the folder. The photo is in:\n{folder}",
        )
