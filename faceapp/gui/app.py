"""Application setup: QApplication, style and palette, the main window, ``main()``."""

from __future__ import annotations

import ctypes.util
import os
import signal
import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from faceapp.gui.resources import icon, style_sheet
from faceapp.gui.settings import APPLICATION, ORGANIZATION
from faceapp.logsetup import setup_logging


def light_palette() -> QPalette:
    """A calm light palette for the Fusion style (the style sheet adds the details)."""
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#f7f8fa",
        QPalette.ColorRole.WindowText: "#111827",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#f3f4f6",
        QPalette.ColorRole.ToolTipBase: "#111827",
        QPalette.ColorRole.ToolTipText: "#f9fafb",
        QPalette.ColorRole.PlaceholderText: "#9ca3af",
        QPalette.ColorRole.Text: "#111827",
        QPalette.ColorRole.Button: "#ffffff",
        QPalette.ColorRole.ButtonText: "#111827",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: "#2563eb",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#2563eb",
        QPalette.ColorRole.Mid: "#d1d5db",
        QPalette.ColorRole.Midlight: "#e5e7eb",
        QPalette.ColorRole.Dark: "#9ca3af",
        QPalette.ColorRole.Light: "#ffffff",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.ButtonText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#9ca3af"))
    return p


def configure_application_names() -> None:
    """Organisation and application names: QSettings keys and the data folder depend on them."""
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    QGuiApplication.setApplicationDisplayName(APPLICATION)


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication, styled; reuses an existing one (tests create their own)."""
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(list(argv) if argv is not None else sys.argv)
    configure_application_names()
    apply_style(app)  # type: ignore[arg-type]
    return app  # type: ignore[return-value]


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(light_palette())
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
        app.setFont(font)
    app.setWindowIcon(icon("app"))
    app.setStyleSheet(style_sheet())


XCB_CURSOR_MESSAGE = (
    "Face Album cannot open its window: the system library libxcb-cursor0, which Qt needs "
    "on X11, is not installed. Install it (Debian/Ubuntu: sudo apt install libxcb-cursor0; "
    "Fedora: sudo dnf install xcb-util-cursor; Arch: sudo pacman -S xcb-util-cursor) and "
    "start Face Album again."
)


def missing_system_library() -> str | None:
    """A clear message when Qt's X11 platform plugin would fail to load, else None.

    Qt 6.5+ needs libxcb-cursor on X11 and only says "could not load the Qt
    platform plugin xcb" when it is missing; checked before QApplication exists.
    """
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    wayland = bool(os.environ.get("WAYLAND_DISPLAY")) and not platform
    if (platform and not platform.startswith("xcb")) or wayland:
        return None
    if ctypes.util.find_library("xcb-cursor") is None:
        return XCB_CURSOR_MESSAGE
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Start the GUI: ``python main.py [FOLDER]`` opens FOLDER right away when given."""
    argv = list(sys.argv if argv is None else argv)
    problem = missing_system_library()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    setup_logging()
    app = create_app(argv)
    from faceapp.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    folders = [a for a in argv[1:] if not a.startswith("-")]
    if folders and os.path.isdir(folders[0]):
        from pathlib import Path

        window.open_folder(Path(folders[0]))
    # Ctrl+C in the terminal closes the app instead of being swallowed by the event loop.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    return app.exec()
