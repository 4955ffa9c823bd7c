"""The distance between two faces on a bar, with the threshold marked."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


class DistanceBar(QWidget):
    """Squared L2 distance (0 = identical, 4 = opposite unit vectors) against a threshold."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.distance: float | None = None
        self.threshold: float | None = None
        self.maximum = 2.0
        self.sure = True  # False: the marker is amber (a distance near the threshold)
        self.setMinimumHeight(58)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(420, 58)

    def set_values(
        self, distance: float | None, threshold: float | None, sure: bool = True
    ) -> None:
        self.distance, self.threshold, self.sure = distance, threshold, sure
        values = [v for v in (distance, threshold) if v is not None]
        self.maximum = max(2.0, *(v * 1.25 for v in values)) if values else 2.0
        self.update()

    def _x(self, bar: QRectF, value: float) -> float:
        return bar.left() + bar.width() * max(0.0, min(1.0, value / self.maximum))

    def paintEvent(self, event: object) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        bar = QRectF(10, 22, self.width() - 20, 10)
        if self.threshold is not None:
            t = self.threshold / self.maximum
            grad = QLinearGradient(bar.topLeft(), bar.topRight())
            grad.setColorAt(0.0, QColor("#bbf7d0"))
            grad.setColorAt(max(0.0, t - 0.001), QColor("#dcfce7"))
            grad.setColorAt(min(1.0, t + 0.001), QColor("#fee2e2"))
            grad.setColorAt(1.0, QColor("#fecaca"))
            p.setBrush(grad)
        else:
            p.setBrush(QColor("#e5e7eb"))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(bar, 5, 5)
        p.setPen(QColor("#6b7280"))
        p.drawText(
            QRectF(bar.left(), bar.bottom() + 4, 120, 18), Qt.AlignmentFlag.AlignLeft, "same"
        )
        p.drawText(
            QRectF(bar.right() - 120, bar.bottom() + 4, 120, 18),
            Qt.AlignmentFlag.AlignRight,
            "different",
        )
        if self.threshold is not None:
            x = self._x(bar, self.threshold)
            p.setPen(QPen(QColor("#374151"), 2, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(x, bar.top() - 6), QPointF(x, bar.bottom() + 6))
            p.setPen(QColor("#374151"))
            p.drawText(
                QRectF(x - 80, bar.bottom() + 4, 160, 18),
                Qt.AlignmentFlag.AlignCenter,
                f"threshold {self.threshold:.3f}",
            )
        if self.distance is not None:
            x = self._x(bar, self.distance)
            same = self.threshold is not None and self.distance < self.threshold
            colour = QColor("#15803d") if same else QColor("#b91c1c")
            if not self.sure:
                colour = QColor("#d97706")
            p.setPen(QPen(QColor("white"), 2))
            p.setBrush(colour)
            p.drawEllipse(QPointF(x, bar.center().y()), 8, 8)
            p.setPen(colour)
            p.drawText(
                QRectF(x - 80, 0, 160, 18),
                Qt.AlignmentFlag.AlignCenter,
                f"distance {self.distance:.3f}",
            )
        p.end()
