"""Icons and the style sheet.

They live in ``resources/`` at the top of the repository; the wheel ships that folder
as ``faceapp/resources`` (pyproject.toml maps it), so an installed app finds them
inside the package and a source checkout finds them next to it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon

_PACKAGE = Path(__file__).resolve().parents[1]
_CANDIDATES = (
    _PACKAGE / "resources",  # installed wheel
    _PACKAGE.parent / "resources",  # source checkout (also an editable install)
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
