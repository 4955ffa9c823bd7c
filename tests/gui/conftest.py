"""Fixtures for the GUI tests: offscreen Qt, throwaway settings, a small LFW album.

The album is 30 real LFW photos of 5 people, copied into a temporary folder
(never into the repo). Scanning it with the real weights takes a while on two
cores, so one session fixture scans and clusters it once into a template
library; tests that only need a finished library open a copy of it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings

PEOPLE = ("Serena_Williams", "Junichiro_Koizumi", "Colin_Powell", "Tony_Blair", "Hugo_Chavez")
PER_PERSON = 6


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """QSettings go to a temporary folder, never to the user's real preferences."""
    folder = tmp_path_factory.mktemp("qsettings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    yield folder


@pytest.fixture(scope="session")
def qapp_args():
    return ["faceapp-tests"]


@pytest.fixture(autouse=True)
def styled_app(qapp):
    from faceapp.gui.app import apply_style, configure_application_names

    configure_application_names()
    apply_style(qapp)
    return qapp


def copy_album(lfw_dir: Path, dest: Path, people=PEOPLE, per_person=PER_PERSON) -> Path:
    """Copy ``per_person`` photos of each person into ``dest/<Name>/``."""
    for name in people:
        src = lfw_dir / name
        (dest / name).mkdir(parents=True, exist_ok=True)
        for photo in sorted(src.iterdir())[:per_person]:
            shutil.copy2(photo, dest / name / photo.name)
    return dest


@pytest.fixture
def album(lfw_dir: Path, tmp_path: Path) -> Path:
    """A fresh folder of 30 LFW photos (5 people x 6)."""
    return copy_album(lfw_dir, tmp_path / "album")


@pytest.fixture(scope="session")
def scanned_template(lfw_dir: Path, tmp_path_factory, weights_cache) -> tuple[Path, Path]:
    """(album folder, library file): the album scanned and clustered once per session."""
    base = tmp_path_factory.mktemp("template")
    folder = copy_album(lfw_dir, base / "album")
    library = base / "template.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEAPP_DATA_DIR", str(base / "data"))
        mp.setenv("FACEAPP_WEIGHTS_CACHE", str(weights_cache))
        from faceapp.engine import cluster, pipeline
        from faceapp.engine.library import open_library

        lib = open_library(folder, library)
        analyzer = pipeline.analyzer_for_library(lib, "cpu")
        report = pipeline.scan(lib, folder, analyzer)
        assert report.faces >= 25, report
        cluster.recluster(lib)
        lib.close()
    return folder, library


@pytest.fixture
def scanned_library(scanned_template, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the scanned template library (same photo folder)."""
    folder, template = scanned_template
    copy = tmp_path / "library.sqlite"
    shutil.copy2(template, copy)
    return folder, copy


@pytest.fixture
def window(qtbot):
    """The real main window, with confirmations answered "yes"."""
    from faceapp.gui.main_window import MainWindow

    win = MainWindow(probe_weights=False)
    win.asked: list[tuple[str, str]] = []

    def ask(title: str, text: str) -> bool:
        win.asked.append((title, text))
        return True

    win.ask = ask
    win.errors: list[tuple[str, str]] = []
    win.session.error.connect(lambda title, text: win.errors.append((title, text)))
    win.show_error = lambda title, text: win.errors.append((title, text))
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    win.session.cancel_scan()
    from faceapp.gui import workers

    workers.cancel_all_and_wait(60_000)
    win.thumbs.shutdown()
