"""The photo view's wiring: show a face's photo, act on a selected box.

A box can be named (new person or one named before), its group renamed (F2),
removed from its group (Delete), or checked in Verify; the photo's folder can
be opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt, Slot
from PySide6.QtWidgets import QMenu

from faceapp.engine.boxes import iou
from faceapp.engine.storage import LibraryError
from faceapp.gui import workers
from faceapp.gui.dialogs.name import NameDialog
from faceapp.gui.groups import GroupKey, GroupKind
from faceapp.gui.refresh import CONTENT_GRID, CONTENT_PHOTO
from faceapp.gui.resources import icon
from faceapp.gui.widgets.photo_canvas import FaceMark

if TYPE_CHECKING:
    from faceapp.gui.main_window import MainWindow


class PhotoMixin:
    """The main window's photo view handling (mixed into :class:`MainWindow`)."""

    def show_photo(self: MainWindow, face_id: int, sequence: list[int] | None = None) -> None:
        """The photo of a face; ``sequence``: the faces Previous / Next step through
        (default: the faces in the grid)."""
        lib = self.session.lib
        if lib is None:
            return
        if sequence is not None:
            self._photo_sequence = list(sequence)
        elif face_id not in getattr(self, "_photo_sequence", []):
            self._photo_sequence = self.grid_model.face_ids()
        row = lib.face(face_id)
        path = self.session.photo_file(row.photo_path)
        if path is None:
            return
        from faceapp.engine import photos

        taken = photos.photo(lib, row.photo_id).taken_at
        self.photo_view.show_photo(path, self._photo_marks(row.photo_id), face_id, taken)
        seq = self._photo_sequence
        at = seq.index(face_id) if face_id in seq else -1
        self.photo_view.set_position(at, len(seq))
        self.content.setCurrentIndex(CONTENT_PHOTO)
        self.photo_view.canvas.setFocus()
        self._update_actions()

    def _photo_marks(self: MainWindow, photo_id: int) -> list[tuple[int, FaceMark]]:
        """Each face of a photo with its box and the name of its group, as now."""
        names = self.sidebar_model.person_names()
        marks = []
        for f in self.session.lib.faces_of_photo(photo_id):
            if f.person_id is not None:
                label = GroupKind.PERSON.title(f.person_id, names.get(f.person_id))
            elif f.cluster_id is not None:
                label = GroupKind.CLUSTER.title(f.cluster_id)
            else:
                label = "Unknown"
            marks.append((f.id, FaceMark(f.box, label, f.person_id is not None)))
        return marks

    def update_photo_marks(self: MainWindow) -> None:
        """After a change (naming a box, an undo): the shown photo's labels follow it."""
        lib = self.session.lib
        ids = self.photo_view.face_ids
        if lib is None or not ids or self.content.currentIndex() != CONTENT_PHOTO:
            return
        try:
            photo_id = lib.face(ids[0]).photo_id
        except LibraryError:  # the face is gone (a rescan removed the photo)
            return
        self.photo_view.set_marks(self._photo_marks(photo_id))

    def show_grid(self: MainWindow) -> None:
        self.content.setCurrentIndex(CONTENT_GRID)
        self.grid.setFocus()
        self._update_actions()

    def step_photo(self: MainWindow, step: int) -> None:
        """Previous / next photo: the next face of the sequence in another photo."""
        seq = getattr(self, "_photo_sequence", [])
        current = self.photo_view.face_ids
        shown = next((f for f in current if f in seq), None)
        if shown is None or self.session.lib is None:
            return
        i = seq.index(shown) + step
        while 0 <= i < len(seq) and seq[i] in current:
            i += step
        if 0 <= i < len(seq):
            self.show_photo(seq[i])

    def toggle_add_face(self: MainWindow) -> None:
        """Drawing mode on the photo: the next box dragged becomes a face."""
        drawing = self.act_add_face.isChecked()
        self.photo_view.canvas.drawing = drawing
        self.photo_view.canvas.setCursor(
            Qt.CursorShape.CrossCursor if drawing else Qt.CursorShape.ArrowCursor
        )
        if drawing:
            self.statusBar().showMessage("Drag a box around the face the scan missed.", 8000)

    def add_face_box(self: MainWindow, box: tuple) -> None:
        """Ask who the drawn face is, then crop and embed it in a worker (the engine's
        add_face) and name it. Asked first, so that a box drawn by mistake and cancelled
        leaves nothing behind."""
        lib, path = self.session.lib, self.photo_view.path
        self.act_add_face.setChecked(False)
        self.toggle_add_face()
        if lib is None or path is None:
            return
        if any(iou(mark.box, box) > 0.5 for mark in self.photo_view.canvas.faces()):
            self.show_error("Add a Missed Face", "That face is marked already: click its box.")
            return
        dialog = NameDialog(
            "Add a Missed Face",
            "Who is this? Type a new name or one you named before.",
            names=self._names(),
            ok_text="Add",
            new_note="A new person “{}” will be made from this face.",
            parent=self,
        )
        dialog.face.set_image(self.photo_view.canvas.crop(box))
        if dialog.exec() != NameDialog.DialogCode.Accepted:
            self.statusBar().showMessage("No face added.", 4000)
            return
        name = dialog.name()
        session = self.session

        def work(job: workers.Job) -> int:
            from faceapp.engine import add_face

            return add_face.add_face(lib, session.analyzer(), path, box)

        def done(face_id: int) -> None:
            self.face_added.emit(face_id)
            self.refresh()
            self.show_photo(face_id)
            self.name_faces([face_id], name)

        self.statusBar().showMessage("Adding the face…", 8000)
        workers.run_in_background(
            work,
            name="add-face",
            on_finished=done,
            on_failed=lambda exc: self.show_error("Add a Missed Face", str(exc)),
        )

    def previous_photo(self: MainWindow) -> None:
        self.step_photo(-1)

    def next_photo(self: MainWindow) -> None:
        self.step_photo(1)

    # -- a person's photos ------------------------------------------------------------------

    def load_photos(self: MainWindow, person_ids: list[int]) -> None:
        """The photos these people are in together, by date, read in a worker."""
        lib = self.session.lib
        if lib is None:
            return
        ids = [int(p) for p in person_ids]
        self._photo_people = ids

        def work(job: workers.Job) -> list:
            from faceapp.engine import photos

            return photos.photos_with(lib, ids)

        def done(found: list, want: list[int] = ids) -> None:
            if self._photo_people == want:
                self.photo_grid.set_photos(found, want, self.session.folder)
                self.photos_loaded.emit()

        workers.run_in_background(work, name="photos", on_finished=done)

    def _on_page_tab(self: MainWindow, index: int) -> None:
        key = self.current_key
        if index == self.grid_page.PHOTOS and key is not None and key.kind.is_person:
            self.load_photos([key.id])

    def show_together(self: MainWindow, keys: list[GroupKey]) -> None:
        """Several people selected: the photos they are all in."""
        names = [self._name_of(k) for k in keys]
        self.grid_page.set_header(" & ".join(names), "Photos they are in together")
        self.grid_page.set_tabs(True, self.grid_page.PHOTOS, faces=False)
        self.content.setCurrentIndex(CONTENT_GRID)
        self._update_actions()
        self.load_photos([k.id for k in keys])

    def make_cover(self: MainWindow) -> None:
        """The selected face becomes the person's picture in the sidebar."""
        key = self.current_key
        ids = self.grid.selected_face_ids()
        if key is None or not key.kind.can_set_cover or len(ids) != 1 or self.session.lib is None:
            return
        from faceapp.engine import photos

        self.session.run_operation("Make Cover Face", photos.set_cover, key.id, ids[0])

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
