"""The whole photo of a face, with every face box and name; open its folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QImage
from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui import workers
from faceapp.gui.resources import icon
from faceapp.gui.views.header import page_with_header
from faceapp.gui.widgets.elided_label import ElidedLabel
from faceapp.gui.widgets.photo_canvas import FaceMark, PhotoCanvas, load_display_image


class PhotoView(QWidget):
    backRequested = Signal()
    faceChosen = Signal(int)  # a face id clicked on the photo
    faceMenuRequested = Signal(int, QPoint)  # face id, global position
    revealFailed = Signal(str)  # the folder no file manager opened

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.taken = ""  # the date the photo shown was taken
        self.face_ids: list[int] = []
        self._job: workers.Job | None = None
        self.loaded = False
        layout, row = page_with_header(self, (16, 10, 16, 10))
        self.back = QPushButton(icon("back"), "Back")
        self.back.setToolTip("Back to the faces (Esc)")
        self.back.clicked.connect(self.backRequested)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        self.title = ElidedLabel()
        self.title.setObjectName("groupTitle")
        self.subtitle = ElidedLabel()
        self.subtitle.setObjectName("groupSubtitle")
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        self.open_folder = QPushButton(icon("folder"), "Open Containing Folder")
        self.open_folder.clicked.connect(self.reveal)
        self.prev = QPushButton(icon("prev"), "")
        self.prev.setToolTip("Previous photo (←)")
        self.next = QPushButton(icon("next"), "")
        self.next.setToolTip("Next photo (→)")
        self.position = QLabel()
        self.position.setObjectName("muted")
        row.addWidget(self.back)
        row.addSpacing(10)
        row.addWidget(self.prev)
        row.addWidget(self.position)
        row.addWidget(self.next)
        row.addSpacing(10)
        row.addLayout(titles, 1)
        self._header_row = row
        row.addWidget(self.open_folder)
        self.canvas = PhotoCanvas()
        self.canvas.clickable = True
        self.canvas.placeholder = "Loading photo…"
        self.canvas.faceClicked.connect(self._on_face_clicked)
        self.canvas.faceMenuRequested.connect(
            lambda i, pos: self.faceMenuRequested.emit(self.face_ids[i], pos)
        )
        self.canvas.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        body = QVBoxLayout()
        body.setContentsMargins(16, 16, 16, 16)
        body.addWidget(self.canvas)
        layout.addLayout(body, 1)

    def show_photo(
        self,
        path: Path,
        faces: list[tuple[int, FaceMark]],
        selected_face: int,
        taken: str | None = None,
    ) -> None:
        """Show ``path`` with its faces (id, mark) and the date it was taken ('YYYY-MM-DD…');
        decoding happens off the GUI thread."""
        self.path = Path(path)
        self.taken = (taken or "")[:10]
        self.face_ids = [fid for fid, _ in faces]
        marks = [m for _, m in faces]
        selected = self.face_ids.index(selected_face) if selected_face in self.face_ids else None
        self.title.setText(self.path.name)
        self._say_faces(len(faces))
        self.canvas.set_image(None)
        self.canvas.placeholder = "Loading photo…"
        self.canvas.set_faces(marks, selected)
        self.loaded = False
        if self._job is not None:
            self._job.cancel()
        target = self.path
        self._job = workers.run_in_background(
            lambda job: load_display_image(target),
            name="photo",
            on_finished=lambda result, p=target: self._on_loaded(p, result),
            on_failed=lambda exc, p=target: self._on_failed(p, exc),
        )

    def set_marks(self, faces: list[tuple[int, FaceMark]]) -> None:
        """New labels for the photo shown (the photo stays; the selected box too)."""
        chosen = self.selected_face()
        self.face_ids = [fid for fid, _ in faces]
        selected = self.face_ids.index(chosen) if chosen in self.face_ids else None
        self.canvas.set_faces([m for _, m in faces], selected)
        self._say_faces(len(faces))

    def _say_faces(self, n: int) -> None:
        taken = f"taken {self.taken}  ·  " if self.taken else ""
        self.subtitle.setText(f"{n} {'face' if n == 1 else 'faces'}  ·  {taken}{self.path}")

    def _on_loaded(self, path: Path, result: tuple[QImage, QSize]) -> None:
        if path != self.path:
            return
        image, full = result
        self.canvas.set_image(image, full)
        self.loaded = True

    def _on_failed(self, path: Path, exc: BaseException) -> None:
        if path != self.path:
            return
        self.canvas.placeholder = f"The photo cannot be shown:\n{exc}"
        self.canvas.set_image(None)
        self.loaded = True

    def _on_face_clicked(self, i: int) -> None:
        if 0 <= i < len(self.face_ids):
            self.faceChosen.emit(self.face_ids[i])

    def add_action_button(self, action: QAction) -> QToolButton:
        """A header button for a window action (before Open Containing Folder)."""
        button = QToolButton()
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._header_row.insertWidget(self._header_row.count() - 1, button)
        return button

    def set_position(self, index: int, count: int) -> None:
        """'3 of 12' between Previous and Next (hidden outside a sequence)."""
        self.position.setText(f"{index + 1} of {count}" if index >= 0 else "")
        self.prev.setEnabled(index > 0)
        self.next.setEnabled(0 <= index < count - 1)

    def selected_face(self) -> int | None:
        """The face id of the selected box, if any."""
        i = self.canvas.selected
        return self.face_ids[i] if i is not None and 0 <= i < len(self.face_ids) else None

    def reveal(self) -> None:
        """Open the photo's folder in the file manager; say so when none opens it."""
        if self.path is not None and not QDesktopServices.openUrl(
            QUrl.fromLocalFile(str(self.path.parent))
        ):
            self.revealFailed.emit(str(self.path.parent))
