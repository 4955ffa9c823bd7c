"""The header band every content page starts with (styled as ``#contentHeader``)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

PAGE_MARGINS = (24, 16, 20, 14)  # left, top, right, bottom of the header's row


def page_with_header(
    page: QWidget, margins: tuple[int, int, int, int] = PAGE_MARGINS
) -> tuple[QVBoxLayout, QHBoxLayout]:
    """Lay ``page`` out as a header band over its content: (page layout, header row)."""
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    header = QWidget()
    header.setObjectName("contentHeader")
    header.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
    row = QHBoxLayout(header)
    row.setContentsMargins(*margins)
    layout.addWidget(header)
    return layout, row
