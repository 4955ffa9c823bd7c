"""A small line chart (QPainter): training loss on the left axis, a metric on the right."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


@dataclass
class Series:
    name: str
    colour: QColor
    axis: str = "left"  # 'left' or 'right'
    points: list[tuple[float, float]] = field(default_factory=list)
    fixed_range: tuple[float, float] | None = None


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return 0.0, 1.0
    if hi - lo < 1e-9:
        pad = abs(hi) * 0.1 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


class LineChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, Series] = {}
        self.x_label = "epoch"
        self.empty_text = "The curves appear here once training starts."
        self.setMinimumHeight(180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(520, 240)

    def add_series(
        self, name: str, colour: str, axis: str = "left", fixed: tuple[float, float] | None = None
    ) -> None:
        self.series[name] = Series(name, QColor(colour), axis, [], fixed)

    def add_point(self, name: str, x: float, y: float) -> None:
        if name in self.series and y is not None and math.isfinite(y):
            self.series[name].points.append((float(x), float(y)))
            self.update()

    def clear(self) -> None:
        for s in self.series.values():
            s.points.clear()
        self.update()

    def _ranges(self) -> tuple[tuple[float, float], dict[str, tuple[float, float]]]:
        xs = [x for s in self.series.values() for x, _ in s.points]
        x_range = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if x_range[1] - x_range[0] < 1e-9:
            x_range = (x_range[0], x_range[0] + 1)
        y: dict[str, tuple[float, float]] = {}
        for axis in ("left", "right"):
            members = [s for s in self.series.values() if s.axis == axis]
            fixed = next((s.fixed_range for s in members if s.fixed_range), None)
            ys = [v for s in members for _, v in s.points]
            lo_hi = _nice_range(min(ys), max(ys)) if ys else (0.0, 1.0)
            if ys and min(ys) >= 0 and lo_hi[0] < 0:  # losses and rates are never negative
                lo_hi = (0.0, lo_hi[1])
            y[axis] = fixed or lo_hi
        return x_range, y

    def paintEvent(self, event: object) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        fm = p.fontMetrics()
        left, right, top, bottom = 66, 56, 26, 42
        plot = QRectF(left, top, self.width() - left - right, self.height() - top - bottom)
        p.setPen(QPen(QColor("#e5e7eb"), 1))
        for i in range(5):
            yy = plot.top() + plot.height() * i / 4
            p.drawLine(QPointF(plot.left(), yy), QPointF(plot.right(), yy))
        p.setPen(QPen(QColor("#9ca3af"), 1))
        p.drawLine(plot.bottomLeft(), plot.bottomRight())
        if not any(s.points for s in self.series.values()):
            p.setPen(QColor("#9ca3af"))
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, self.empty_text)
        (x0, x1), yr = self._ranges()
        p.setPen(QColor("#6b7280"))
        for i in range(5):
            yy = plot.top() + plot.height() * i / 4
            for axis, xpos, align in (
                ("left", 4, Qt.AlignmentFlag.AlignRight),
                ("right", plot.right() + 6, Qt.AlignmentFlag.AlignLeft),
            ):
                if not any(s.axis == axis for s in self.series.values()):
                    continue
                lo, hi = yr[axis]
                value = hi - (hi - lo) * i / 4
                rect = QRectF(xpos, yy - 8, left - 10, 16)
                p.drawText(rect, align | Qt.AlignmentFlag.AlignVCenter, f"{value:.3g}")
        for i in range(5):
            xv = x0 + (x1 - x0) * i / 4
            xx = plot.left() + plot.width() * i / 4
            p.drawText(
                QRectF(xx - 30, plot.bottom() + 4, 60, 18),
                Qt.AlignmentFlag.AlignCenter,
                f"{xv:.3g}",
            )
        lx = plot.left()
        for s in self.series.values():
            lo, hi = yr[s.axis]
            if s.points:
                path = QPainterPath()
                for j, (xv, yv) in enumerate(s.points):
                    pt = QPointF(
                        plot.left() + (xv - x0) / (x1 - x0) * plot.width(),
                        plot.bottom() - (yv - lo) / (hi - lo) * plot.height(),
                    )
                    if j == 0:
                        path.moveTo(pt)
                    else:
                        path.lineTo(pt)
                p.setPen(QPen(s.colour, 2.2))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawPath(path)
                if len(s.points) == 1:
                    p.setBrush(s.colour)
                    p.drawEllipse(path.currentPosition(), 3, 3)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(s.colour)
            p.drawRoundedRect(QRectF(lx, 8, 14, 4), 2, 2)
            p.setPen(QColor("#374151"))
            label = f"{s.name} ({s.axis} axis)" if len(self.series) > 1 else s.name
            p.drawText(QPointF(lx + 18, 14), label)
            lx += fm.horizontalAdvance(label) + 40
        p.setPen(QColor("#6b7280"))
        p.drawText(
            QRectF(plot.left(), plot.bottom() + 22, plot.width(), 16),
            Qt.AlignmentFlag.AlignCenter,
            self.x_label,
        )
        p.end()
