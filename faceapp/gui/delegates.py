"""Painting: rounded face thumbnails in the grid, avatars and section headers in the sidebar."""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from faceapp.gui.models import Role

ACCENT = QColor("#2563eb")
ACCENT_SOFT = QColor("#dbe7ff")
FOCUS = QColor("#1e3a8a")  # keyboard focus ring
PLACEHOLDER = QColor("#eceef1")
MUTED = QColor("#6b7280")
TEXT = QColor("#111827")
_Index = QModelIndex | QPersistentModelIndex


_SCALED: OrderedDict[tuple, QImage] = OrderedDict()  # avatars etc. at their painted size
_SCALED_MAX = 600


def _fitted(image: QImage, w: int, h: int, radius: float, circle: bool) -> QImage:
    """``image`` centre-cropped, scaled and clipped to w x h, cached by content and size."""
    key = (image.cacheKey(), w, h, radius, circle)
    hit = _SCALED.get(key)
    if hit is not None:
        _SCALED.move_to_end(key)
        return hit
    out = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    out.fill(Qt.GlobalColor.transparent)
    p = QPainter(out)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    path = QPainterPath()
    if circle:
        path.addEllipse(QRectF(0, 0, w, h))
    else:
        path.addRoundedRect(QRectF(0, 0, w, h), radius, radius)
    p.setClipPath(path)
    side = min(image.width(), image.height())
    src = QRectF((image.width() - side) / 2, (image.height() - side) / 2, side, side)
    p.drawImage(QRectF(0, 0, w, h), image, src)
    p.end()
    _SCALED[key] = out
    while len(_SCALED) > _SCALED_MAX:
        _SCALED.popitem(last=False)
    return out


def rounded_image(
    painter: QPainter, rect: QRectF, image: QImage | None, radius: float, *, circle: bool = False
) -> None:
    """Draw ``image`` cropped to fill ``rect`` with rounded corners (or as a circle)."""
    if image is not None and not image.isNull() and rect.width() >= 1 and rect.height() >= 1:
        fitted = _fitted(image, round(rect.width()), round(rect.height()), radius, circle)
        painter.drawImage(rect.topLeft(), fitted)
        return
    path = QPainterPath()
    if circle:
        path.addEllipse(rect)
    else:
        path.addRoundedRect(rect, radius, radius)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    painter.setClipPath(path)
    if image is None or image.isNull():
        painter.fillRect(rect, PLACEHOLDER)
    else:
        side = min(image.width(), image.height())
        src = QRectF((image.width() - side) / 2, (image.height() - side) / 2, side, side)
        painter.drawImage(rect, image, src)
    painter.restore()


class FaceDelegate(QStyledItemDelegate):
    """A square, rounded crop per face; selection as an accent ring and a check badge."""

    def __init__(self, size: int = 112, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self.spacing = 10

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        return QSize(self.size + self.spacing, self.size + self.spacing)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        rect = QRectF(option.rect).adjusted(
            self.spacing / 2, self.spacing / 2, -self.spacing / 2, -self.spacing / 2
        )
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        image = index.data(Role.IMAGE)
        if image is not None and image.width() == round(rect.width()):
            painter.drawImage(rect.topLeft(), image)  # already scaled and rounded off-thread
        else:
            rounded_image(painter, rect, image, 10)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if selected:
            painter.setPen(QPen(ACCENT, 3))
            painter.setBrush(QColor(37, 99, 235, 40))
            painter.drawRoundedRect(rect.adjusted(1.5, 1.5, -1.5, -1.5), 9, 9)
            badge = QRectF(rect.right() - 24, rect.top() + 6, 18, 18)
            painter.setPen(QPen(QColor("white"), 1.5))
            painter.setBrush(ACCENT)
            painter.drawEllipse(badge)
            pen = QPen(QColor("white"), 2)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            painter.setPen(pen)
            c = badge.center()
            painter.drawPolyline(
                [c + QPointF(-4.5, 0.2), c + QPointF(-1.2, 3.4), c + QPointF(4.5, -2.8)]
            )
        elif hovered:
            painter.setPen(QPen(QColor(0, 0, 0, 50), 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(0.5, 0.5, -0.5, -0.5), 10, 10)
        if option.state & QStyle.StateFlag.State_HasFocus:
            draw_focus_ring(painter, rect.adjusted(-3, -3, 3, 3), 12)
        painter.restore()


def draw_focus_ring(painter: QPainter, rect: QRectF, radius: float) -> None:
    """The keyboard focus ring: solid and dark enough to see on a selected item too."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(FOCUS, 2.5))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRoundedRect(rect, radius, radius)
    painter.restore()


class GroupDelegate(QStyledItemDelegate):
    """Sidebar rows: section headers, hints, and groups with a round avatar and a count."""

    ROW_HEIGHT = 44
    HEADER_HEIGHT = 30
    HINT_HEIGHT = 28

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.drop_target: QModelIndex | None = None

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        kind = index.data(Role.KIND)
        height = {"header": self.HEADER_HEIGHT, "hint": self.HINT_HEIGHT}.get(kind, self.ROW_HEIGHT)
        return QSize(200, height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        kind = index.data(Role.KIND)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRect(option.rect)
        if kind == "header":
            self._paint_header(painter, rect, index)
        elif kind == "hint":
            font = QFont(option.font)
            font.setItalic(True)
            painter.setFont(font)
            painter.setPen(MUTED)
            painter.drawText(
                rect.adjusted(18, 0, -8, 0),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                index.data(),
            )
        else:
            self._paint_group(painter, option, rect, index)
        painter.restore()

    def _paint_header(self, painter: QPainter, rect: QRect, index: _Index) -> None:
        font = painter.font()
        font.setBold(True)
        font.setPointSizeF(max(7.5, font.pointSizeF() * 0.85))
        font.setCapitalization(QFont.Capitalization.AllUppercase)
        font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 106)
        painter.setFont(font)
        painter.setPen(MUTED)
        arrow = "▸" if index.data(Role.COLLAPSED) else "▾"
        text_rect = rect.adjusted(12, 6, -12, 0)
        painter.drawText(
            text_rect,
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            f"{arrow}  {index.data()}",
        )
        count = index.data(Role.COUNT)
        if count:
            painter.drawText(
                text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, str(count)
            )

    def _paint_group(
        self, painter: QPainter, option: QStyleOptionViewItem, rect: QRect, index: _Index
    ) -> None:
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        is_drop = self.drop_target is not None and self.drop_target == index
        bg = rect.adjusted(6, 2, -6, -2)
        if is_drop:
            painter.setPen(QPen(ACCENT, 2, Qt.PenStyle.DashLine))
            painter.setBrush(ACCENT_SOFT)
            painter.drawRoundedRect(QRectF(bg).adjusted(1, 1, -1, -1), 8, 8)
        elif selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(ACCENT_SOFT)
            painter.drawRoundedRect(QRectF(bg), 8, 8)
        elif hovered:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 14))
            painter.drawRoundedRect(QRectF(bg), 8, 8)
        avatar = QRectF(bg.left() + 8, bg.center().y() - 15, 30, 30)
        key = index.data(Role.KEY)
        if key is not None and not key.kind.can_name:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#e5e7eb"))
            painter.drawEllipse(avatar)
            painter.setPen(MUTED)
            f = painter.font()
            f.setBold(True)
            painter.setFont(f)
            painter.drawText(avatar, Qt.AlignmentFlag.AlignCenter, "?")
            painter.setFont(option.font)
        else:
            rounded_image(painter, avatar, index.data(Role.IMAGE), 15, circle=True)
        count = str(index.data(Role.COUNT))
        font = QFont(option.font)
        fm_count = painter.fontMetrics()
        count_w = fm_count.horizontalAdvance(count) + 14
        count_rect = QRectF(bg.right() - count_w - 6, bg.center().y() - 10, count_w, 20)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#ffffff") if selected else QColor("#e9ebef"))
        painter.drawRoundedRect(count_rect, 10, 10)
        painter.setPen(MUTED)
        painter.drawText(count_rect, Qt.AlignmentFlag.AlignCenter, count)
        named = bool(index.data(Role.NAMED))
        font.setBold(named)
        font.setItalic(not named and key is not None and key.kind.can_name)
        painter.setFont(font)
        painter.setPen(TEXT if named or selected else QColor("#374151"))
        text_rect = QRectF(
            avatar.right() + 10, bg.top(), count_rect.left() - avatar.right() - 16, bg.height()
        )
        text = painter.fontMetrics().elidedText(
            index.data(), Qt.TextElideMode.ElideRight, int(text_rect.width())
        )
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text
        )
        if option.state & QStyle.StateFlag.State_HasFocus:
            draw_focus_ring(painter, QRectF(bg).adjusted(1, 1, -1, -1), 8)
