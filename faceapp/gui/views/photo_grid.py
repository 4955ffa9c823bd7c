"""A person's photos (or several people's photos together) as a grid by date.

Each tile says when the photo was taken and, when the person's birth date is
known, how old they were. Thumbnails are decoded in a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from faceapp.gui import workers
from faceapp.gui.widgets.photo_canvas import load_display_image

THUMB = 168


def caption(photo: Any, person_ids: list[int]) -> str:
    """'2009-06-14 · age 7' (the date, and each given person's age when known)."""
    date = (photo.taken_at or "")[:10] or "no date"
    ages = [
        f"{f.name} {f.age}" if len(person_ids) > 1 else f"age {f.age}"
        for f in photo.faces
        if f.person_id in person_ids and f.age is not None
    ]
    return "  ·  ".join([date, *ages])


def _thumbnails(paths: list[Path], job: workers.Job) -> list[QImage | None]:
    out: list[QImage | None] = []
    for path in paths:
        if job.is_cancelled():
            break
        try:
            out.append(load_display_image(path, THUMB)[0])
        except OSError:
            out.append(None)
    return out


class PhotoGridView(QListWidget):
    """Photos oldest first; double-click or Enter opens one (the person's face in it)."""

    photoActivated = Signal(int, list)  # face id to show, the sequence of face ids

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("photoGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 24, THUMB + 44))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setWordWrap(True)
        self.photos: list[Any] = []
        self.faces: list[int] = []  # per photo: the face of the (first) person shown
        self._job: workers.Job | None = None
        self.loaded = False
        self.itemActivated.connect(self._activated)

    def set_photos(self, photos: list[Any], person_ids: list[int], root: Path | None) -> None:
        self.clear()
        self.photos = list(photos)
        self.faces = [
            next((f.face_id for f in p.faces if f.person_id in person_ids), p.faces[0].face_id)
            if p.faces
            else -1
            for p in self.photos
        ]
        for p in self.photos:
            item = QListWidgetItem(caption(p, person_ids))
            item.setToolTip(p.path)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.addItem(item)
        if self._job is not None:
            self._job.cancel()
        self.loaded = not self.photos or root is None
        if self.loaded:
            return
        paths = [Path(root) / p.path for p in self.photos]
        photos_now = self.photos
        self._job = workers.run_in_background(
            lambda job: _thumbnails(paths, job),
            name="photo-thumbnails",
            on_finished=lambda images, shown=photos_now: self._on_thumbnails(shown, images),
        )

    def _on_thumbnails(self, shown: list[Any], images: list[QImage | None]) -> None:
        if shown is not self.photos:
            return
        for i, image in enumerate(images):
            if image is not None:
                self.item(i).setIcon(QIcon(QPixmap.fromImage(image)))
        self.loaded = True

    def _activated(self, item: QListWidgetItem) -> None:
        row = self.row(item)
        if 0 <= row < len(self.faces) and self.faces[row] >= 0:
            self.photoActivated.emit(self.faces[row], [f for f in self.faces if f >= 0])
