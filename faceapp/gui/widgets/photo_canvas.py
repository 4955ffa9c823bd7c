"""A photo scaled to fit, with a labelled box per face; click a box to choose that face."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QFont,
    QImage,
    QImageReader,
    QMouseEvent,
    QPainter,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

MAX_SIDE = 2560  # photos are shown downscaled to at most this many pixels


@dataclass
class FaceMark:
    box: tuple[float, float, float, float]  # display pixels of the full photo
    label: str = ""
    named: bool = False


def load_display_image(path: Path, max_side: int = MAX_SIDE) -> tuple[QImage, QSize]:
    """Decode a photo for display (any thread): EXIF-rotated, downscaled; plus its full size.

    The engine's face boxes are in display pixels of the full, EXIF-rotated
    photo, so the full size is what the boxes are scaled against.
    """
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    image = reader.read()
    if image.isNull():
        return _decode_with_engine(path, max_side, reader.errorString())
    full = image.size()
    if max(full.width(), full.height()) > max_side:
        image = image.scaled(
            max_side,
            max_side,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return image, full


def _decode_with_engine(path: Path, max_side: int, qt_error: str) -> tuple[QImage, QSize]:
    """Formats Qt has no plugin for (HEIC, AVIF): the scan's own decoder, upright."""
    from faceapp.engine.image_open import ImageError
    from faceapp.engine.images import load_image

    try:
        decoded = load_image(path, max_side)
    except ImageError as exc:
        raise OSError(f"cannot read {path}: {exc} ({qt_error})") from None
    rgb = decoded.small.convert("RGB")
    data = rgb.tobytes()
    image = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return image.copy(), QSize(decoded.width, decoded.height)


class PhotoCanvas(QWidget):
    faceClicked = Signal(int)
    faceMenuRequested = Signal(int, QPoint)  # face index, global position
    boxDrawn = Signal(tuple)  # x1, y1, x2, y2 in display pixels of the full photo

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setMouseTracking(True)
        self._image: QImage | None = None
        self._full = QSize()
        self._faces: list[FaceMark] = []
        self.selected: int | None = None
        self._hover: int | None = None
        self.placeholder = ""
        self.clickable = False
        self.dim_unselected = False  # Verify: the chosen face stands out, the others fade
        self.drawing = False  # dragging draws a box (a face the detector missed)
        self._drag: tuple[QPointF, QPointF] | None = None

    def set_image(self, image: QImage | None, full_size: QSize | None = None) -> None:
        self._image = image
        self._full = full_size or (image.size() if image is not None else QSize())
        self.update()

    def set_faces(self, faces: list[FaceMark], selected: int | None = None) -> None:
        self._faces = list(faces)
        self.selected = selected
        self.update()

    def faces(self) -> list[FaceMark]:
        return list(self._faces)

    def sizeHint(self) -> QSize:
        return QSize(480, 360)

    def crop(self, box: tuple[float, float, float, float]) -> QImage | None:
        """The part of the shown photo inside ``box`` (display pixels of the full photo)."""
        if self._image is None or self._image.isNull() or self._full.isEmpty():
            return None
        s = self._image.width() / self._full.width()
        x1, y1, x2, y2 = (round(v * s) for v in box)
        return self._image.copy(x1, y1, max(1, x2 - x1), max(1, y2 - y1))

    # -- geometry -------------------------------------------------------------------------

    def _target(self) -> QRectF:
        if self._image is None or self._image.isNull():
            return QRectF()
        w, h = self._image.width(), self._image.height()
        scale = min(self.width() / w, self.height() / h)
        tw, th = w * scale, h * scale
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def face_rect(self, i: int) -> QRectF:
        target = self._target()
        if target.isEmpty() or self._full.isEmpty():
            return QRectF()
        sx = target.width() / self._full.width()
        sy = target.height() / self._full.height()
        x1, y1, x2, y2 = self._faces[i].box
        return QRectF(
            target.left() + x1 * sx, target.top() + y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy
        )

    def to_photo(self, pos: QPointF) -> tuple[float, float]:
        """A widget position in display pixels of the full photo (clamped to it)."""
        target = self._target()
        sx = self._full.width() / target.width()
        sy = self._full.height() / target.height()
        x = min(max(pos.x(), target.left()), target.right())
        y = min(max(pos.y(), target.top()), target.bottom())
        return (x - target.left()) * sx, (y - target.top()) * sy

    def face_at(self, pos: QPointF) -> int | None:
        hits = [i for i in range(len(self._faces)) if self.face_rect(i).contains(pos)]
        if not hits:
            return None
        return min(hits, key=lambda i: self.face_rect(i).width())  # innermost box wins

    # -- events ---------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            self._drag = (self._drag[0], event.position())
            self.update()
            return
        hover = self.face_at(event.position()) if self.clickable else None
        if hover != self._hover:
            self._hover = hover
            self.setCursor(
                Qt.CursorShape.PointingHandCursor
                if hover is not None
                else (Qt.CursorShape.CrossCursor if self.drawing else Qt.CursorShape.ArrowCursor)
            )
            self.update()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            start, end = self._drag[0], event.position()
            self._drag = None
            self.update()
            (x1, y1), (x2, y2) = self.to_photo(start), self.to_photo(end)
            box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                self.boxDrawn.emit(box)
            return
        super().mouseReleaseEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        target = self._target()
        if (
            self.drawing
            and event.button() == Qt.MouseButton.LeftButton
            and target.contains(event.position())
        ):
            self._drag = (event.position(), event.position())
            return
        if self.clickable and event.button() == Qt.MouseButton.LeftButton:
            hit = self.face_at(event.position())
            if hit is not None:
                self.selected = hit
                self.update()
                self.faceClicked.emit(hit)
                return
        super().mousePressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        hit = self.face_at(QPointF(event.pos())) if self.clickable else None
        if hit is None:
            super().contextMenuEvent(event)
            return
        self.selected = hit
        self.update()
        self.faceClicked.emit(hit)
        self.faceMenuRequested.emit(hit, event.globalPos())

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        target = self._target()
        if target.isEmpty():
            painter.setPen(QColor("#9ca3af"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            painter.end()
            return
        painter.drawImage(target, self._image)
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        fm = painter.fontMetrics()
        for i, face in enumerate(self._faces):
            rect = self.face_rect(i)
            chosen = i == self.selected
            hovered = i == self._hover
            if chosen:
                colour = QColor("#2563eb")
            elif self.dim_unselected and self.selected is not None:
                colour = QColor(255, 255, 255, 200)
            else:
                colour = QColor("#10b981") if face.named else QColor("#f59e0b")
            painter.save()
            painter.setClipRect(target.adjusted(-2, -2, 2, 2))  # boxes may reach past the edge
            painter.setPen(QPen(colour, 3.5 if chosen or hovered else 2.2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect, 4, 4)
            painter.restore()
            rect = rect.intersected(target)
            if face.label:
                text = fm.elidedText(face.label, Qt.TextElideMode.ElideRight, 220)
                tw, th = fm.horizontalAdvance(text) + 12, fm.height() + 6
                top = rect.bottom() + 4
                if top + th > self.height():
                    top = rect.top() - th - 4
                label = QRectF(rect.center().x() - tw / 2, top, tw, th)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(17, 24, 39, 200))
                painter.drawRoundedRect(label, th / 2, th / 2)
                painter.setPen(QColor("white"))
                painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
        if self._drag is not None:
            painter.setPen(QPen(QColor("#2563eb"), 2, Qt.PenStyle.DashLine))
            painter.setBrush(QColor(37, 99, 235, 40))
            painter.drawRect(QRectF(self._drag[0], self._drag[1]).normalized())
        painter.end()
