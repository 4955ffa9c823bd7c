"""Verify: are the people in two photos the same person?

Each side takes a photo (button, drop from the file manager, or a face dragged
from the grid). The engine's analyzer finds and embeds the faces in a worker;
both photos are shown with their boxes and, when a photo has several faces, a
click picks the one to compare (no verdict until it is picked). The verdict comes
from ``verify.compare``: squared distance against the model's threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from faceapp.engine.boxes import iou
from faceapp.gui import mime, workers
from faceapp.gui.views.review import FaceImage
from faceapp.gui.widgets.distance_bar import DistanceBar
from faceapp.gui.widgets.photo_canvas import FaceMark, PhotoCanvas, load_display_image

IMAGE_FILTER = (
    "Images (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff *.heic *.heif *.avif);;All files (*)"
)


def crop_to_qimage(crop: np.ndarray) -> QImage:
    crop = np.ascontiguousarray(crop, dtype=np.uint8)
    h, w, _ = crop.shape
    return QImage(crop.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class PhotoPane(QFrame):
    """One side of the comparison: choose or drop a photo, click a face."""

    photoDropped = Signal(object, object)  # path, preferred box or None
    faceChanged = Signal()

    def __init__(self, title: str, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.path: Path | None = None
        self.faces: list[Any] = []
        self.chosen: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        head = QHBoxLayout()
        label = QLabel(title)
        font = label.font()
        font.setBold(True)
        label.setFont(font)
        self.choose = QPushButton("Choose Photo…")
        self.choose.setAutoDefault(False)
        self.choose.clicked.connect(self._browse)
        head.addWidget(label)
        head.addStretch(1)
        head.addWidget(self.choose)
        self.canvas = PhotoCanvas()
        self.canvas.clickable = True
        self.canvas.dim_unselected = True
        self.canvas.placeholder = "Drop a photo here\n(from the file manager or the face grid)"
        self.canvas.faceClicked.connect(self._on_click)
        self.canvas.setMinimumSize(320, 260)
        self.status = QLabel(" ")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        layout.addLayout(head)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.status)

    def _browse(self) -> None:
        start = str(self.path.parent) if self.path else str(self.session.folder or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a photo", start, IMAGE_FILTER)
        if path:
            self.photoDropped.emit(Path(path), None)

    # -- drops --------------------------------------------------------------------------

    def _accepts(self, data: Any) -> bool:
        if data.hasFormat(mime.FACES_MIME):
            return self.session.lib is not None
        return data.hasUrls() and any(u.isLocalFile() for u in data.urls())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._accepts(event.mimeData()):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if self.handle_mime(event.mimeData()):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def handle_mime(self, data: Any) -> bool:
        faces = mime.faces_from_mime(data)
        if faces is not None and faces[0] and self.session.lib is not None:
            row = self.session.lib.face(faces[0][0])
            path = self.session.photo_file(row.photo_path)
            if path is not None:
                self.photoDropped.emit(path, row.box)
                return True
        if data.hasUrls():
            for url in data.urls():
                if url.isLocalFile():
                    self.photoDropped.emit(Path(url.toLocalFile()), None)
                    return True
        return False

    # -- content ------------------------------------------------------------------------

    def loading(self, path: Path) -> None:
        self.path = path
        self.faces = []
        self.chosen = None
        self.canvas.set_image(None)
        self.canvas.set_faces([])
        self.canvas.placeholder = "Finding faces…"
        self.status.setText(path.name)

    def show_result(self, image: QImage, decoded: Any, faces: list[Any], chosen: int | None):
        self.faces = faces
        self.chosen = chosen
        full = QSize(int(decoded.width), int(decoded.height))
        self.canvas.set_image(image, full)
        marks = [
            FaceMark(tuple(f.face.box), f"{i + 1}" if len(faces) > 1 else "", True)
            for i, f in enumerate(faces)
        ]
        self.canvas.set_faces(marks, chosen)
        n = len(faces)
        if n == 0:
            self.status.setText(f"{self.path.name}: no face found in this photo.")
        elif n == 1:
            self.status.setText(f"{self.path.name}: one face.")
        else:
            self.status.setText(f"{self.path.name}: {n} faces. Click the one to compare.")

    def show_error(self, text: str) -> None:
        self.canvas.set_image(None)
        self.canvas.placeholder = text
        self.canvas.update()
        self.status.setText(text)

    def _on_click(self, i: int) -> None:
        if 0 <= i < len(self.faces):
            self.chosen = i
            self.faceChanged.emit()

    def chosen_face(self) -> Any | None:
        if self.chosen is None or not (0 <= self.chosen < len(self.faces)):
            return None
        return self.faces[self.chosen]


class VerifyDialog(QDialog):
    verdictReady = Signal(object)  # engine Verdict

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Verify Two Photos")
        self.setMinimumSize(900, 640)
        self.verdict: Any = None
        self._analyzer: Any = None
        self._jobs: dict[int, workers.Job] = {}
        self._pending = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 12)
        layout.setSpacing(12)
        intro = QLabel(
            "Are these the same person? Choose or drop two photos; if a photo shows several "
            "people, click the face to compare."
        )
        intro.setObjectName("muted")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        panes = QHBoxLayout()
        self.panes = [PhotoPane("Photo A", session), PhotoPane("Photo B", session)]
        for i, pane in enumerate(self.panes):
            pane.photoDropped.connect(lambda path, box, i=i: self.set_photo(i, path, box))
            pane.faceChanged.connect(self._compare)
            panes.addWidget(pane, 1)
        layout.addLayout(panes, 1)

        result = QFrame()
        result.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(result)
        row.setContentsMargins(14, 12, 14, 12)
        row.setSpacing(16)
        self.crops = [FaceImage(96), FaceImage(96)]
        row.addWidget(self.crops[0])
        middle = QVBoxLayout()
        self.verdict_label = QLabel("Choose two photos")
        self.verdict_label.setObjectName("verdictPending")
        self.verdict_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.bar = DistanceBar()
        self.source_label = QLabel(" ")
        self.source_label.setObjectName("muted")
        self.source_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.source_label.setWordWrap(True)
        middle.addWidget(self.verdict_label)
        middle.addWidget(self.bar)
        middle.addWidget(self.source_label)
        row.addLayout(middle, 1)
        row.addWidget(self.crops[1])
        layout.addWidget(result)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)

    # -- analysis -------------------------------------------------------------------------

    def set_photo(self, side: int, path: Path, prefer_box: tuple | None = None) -> None:
        """Analyse a photo for side 0 (A) or 1 (B) in the background."""
        pane = self.panes[side]
        path = Path(path)
        pane.loading(path)
        self.verdict = None
        self._show_pending("Finding faces…")
        old = self._jobs.get(side)
        if old is not None:
            old.cancel()
        session = self.session

        def work(job: workers.Job) -> tuple:
            analyzer = session.analyzer()
            decoded, faces = analyzer.analyze_path(path)
            image, _ = load_display_image(path)
            return image, decoded, faces, analyzer

        job = workers.Job(work, name=f"verify-{side}")
        job.signals.finished.connect(
            lambda result, j=job, s=side, b=prefer_box: self._on_analyzed(j, s, result, b)
        )
        job.signals.failed.connect(lambda exc, j=job, s=side: self._on_failed(j, s, exc))
        self._jobs[side] = job
        workers.start(job)

    def _on_analyzed(self, job: workers.Job, side: int, result: tuple, prefer: tuple | None):
        if self._jobs.get(side) is not job:
            return
        del self._jobs[side]
        image, decoded, faces, self._analyzer = result
        chosen = None
        if faces:
            from faceapp.engine import verify

            # One face is the one to compare; in a group photo the user picks (a face
            # dragged from the grid picks itself).
            chosen = verify.largest_face(faces) if len(faces) == 1 else None
            if prefer is not None:
                best = max(range(len(faces)), key=lambda i: iou(faces[i].face.box, prefer))
                if iou(faces[best].face.box, prefer) > 0.3:
                    chosen = best
        self.panes[side].show_result(image, decoded, faces, chosen)
        self._compare()

    def _on_failed(self, job: workers.Job, side: int, exc: BaseException) -> None:
        if self._jobs.get(side) is not job:
            return
        del self._jobs[side]
        if any(c.__name__ == "WeightsError" for c in type(exc).__mro__):
            self.session.weightsFailed.emit(str(exc))
        self.panes[side].show_error(f"Cannot use this photo: {exc}")
        self._compare()

    def busy(self) -> bool:
        return bool(self._jobs)

    def _show_pending(self, text: str) -> None:
        self.verdict_label.setObjectName("verdictPending")
        self.verdict_label.setText(text)
        self.verdict_label.style().unpolish(self.verdict_label)
        self.verdict_label.style().polish(self.verdict_label)
        self.bar.set_values(None, None)
        self.source_label.setText(" ")

    def _missing_text(self) -> str:
        """Why there is no verdict yet, in the words of what to do next."""
        if any(p.path is None for p in self.panes):
            return "Choose two photos"
        for letter, pane in zip("AB", self.panes, strict=True):
            if len(pane.faces) > 1 and pane.chosen_face() is None:
                return f"Click the face to compare in photo {letter}"
        return "Both photos need a face to compare"

    def _compare(self) -> None:
        faces = [p.chosen_face() for p in self.panes]
        for crop, face in zip(self.crops, faces, strict=True):
            crop.set_image(crop_to_qimage(face.crop) if face is not None else None)
        if self._jobs:
            self._show_pending("Finding faces…")
            return
        if any(f is None for f in faces):
            self._show_pending(self._missing_text())
            return
        from faceapp.engine import verify

        override = self.session.settings.threshold
        judge: Any = self._analyzer
        if override is not None:
            judge = _Threshold(override, "your setting (Settings › Threshold)")
        verdict = verify.compare(faces[0], faces[1], judge)
        self.verdict = verdict
        same = verdict.same
        sure = verdict_is_sure(verdict.distance, verdict.threshold)
        if not sure:
            self.verdict_label.setObjectName("verdictUnsure")
            self.verdict_label.setText(
                "Probably the same person, not sure" if same else "Probably different, not sure"
            )
        else:
            self.verdict_label.setObjectName("verdictSame" if same else "verdictDifferent")
            self.verdict_label.setText("Same person" if same else "Different people")
        self.verdict_label.style().unpolish(self.verdict_label)
        self.verdict_label.style().polish(self.verdict_label)
        self.bar.set_values(verdict.distance, verdict.threshold, sure)
        self.source_label.setText(
            f"Squared distance {verdict.distance:.3f} "
            f"{'<' if same else '≥'} threshold {verdict.threshold:.3f}  ·  "
            f"threshold: {verdict.threshold_source}"
        )
        self.verdictReady.emit(verdict)


def verdict_is_sure(distance: float, threshold: float) -> bool:
    """Sure when the engine's calibrated confidence (LFW's curve for this threshold)
    agrees with the verdict and is "likely"; a "same" just under the threshold is not."""
    from faceapp.engine import review

    p_same = float(review.lfw_calibration(threshold).confidence(distance))
    if distance < threshold:
        return p_same >= review.LIKELY
    return p_same <= 1.0 - review.LIKELY


class _Threshold:
    """What ``verify.compare`` reads from an analyzer: the threshold and where it came from."""

    def __init__(self, threshold: float, source: str) -> None:
        self.threshold = threshold
        self.threshold_source = source
