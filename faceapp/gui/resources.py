"""Icons and the style sheet, looked up next to the package (``resources/`` at the repo root)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "resources",
    Path(__file__).resolve().parents[1] / "resources",
)


@cache
def resource_dir() -> Path | None:
    """The folder holding ``icons/`` and ``style.qss`` (None when not shipped)."""
    for candidate in _CANDIDATES:
        if (candidate / "style.qss").is_file():
            return candidate
    return None


def icon(name: str) -> QIcon:
    """An SVG icon by name; an empty icon (never an error) when it is missing."""
    base = resource_dir()
    if base is None:
        return QIcon()
    path = base / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def style_sheet() -> str:
    base = resource_dir()
    if base is None:
        return ""
    return (base / "style.qss").read_text(encoding="utf-8")
