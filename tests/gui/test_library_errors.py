"""Library read errors in plain words: what happened and what to do, SQLite's own words
under "Show Details…"; a damaged file offers its backup (once)."""

from __future__ import annotations

import gc
import sqlite3
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from damaged_library import built_library, overwrite_page

from faceapp.engine import backup
from faceapp.engine.storage import LibraryDamaged, StorageError
from faceapp.gui.groups import GroupKey, GroupKind
from faceapp.gui.library_errors import library_problem
from faceapp.logsetup import setup_logging


def visible_box(name: str):
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() == name and widget.isVisible():
            return widget
    return None


def test_plain_words_for_sqlite_errors(tmp_path):
    path = tmp_path / "lib.sqlite"
    damaged = library_problem(sqlite3.DatabaseError("database disk image is malformed"), path)
    assert damaged.damaged and "lib.sqlite is damaged" in damaged.text
    engine = library_problem(LibraryDamaged(path, "database disk image is malformed"), path)
    assert engine == damaged  # the engine's CLI wording (`faceapp restore ...`) is not shown
    locked = library_problem(sqlite3.OperationalError("database is locked"), path)
    assert not locked.damaged and locked.text.startswith("Another program is using the library")
    try:
        raise StorageError("the disk holding x is full; run the command again") from OSError(
            28, "No space left on device"
        )
    except StorageError as exc:
        full = library_problem(exc, path)
    assert full.text.startswith("The disk holding the library is full")
    assert "command" not in full.text
    other = library_problem(sqlite3.OperationalError("no such column: x"), path)
    assert "could not read the library lib.sqlite" in other.text and "Show Details" in other.text
    for problem in (damaged, locked, full, other):
        assert "malformed" not in problem.text and "SQLite" not in problem.text
    assert library_problem(ValueError("no faces given"), path) is None


def test_a_read_error_in_an_open_library_offers_the_backup_once(qtbot, window, tmp_path):
    setup_logging()
    path = tmp_path / "lib.sqlite"
    lib = built_library(path)
    backup.make_backup(lib, "after-edits")
    lib.close()
    gc.collect()
    session = window.session
    session.open_library_file(path, scan=False)
    qtbot.waitUntil(lambda: session.lib is not None and not window.refreshing, timeout=30_000)
    anna = next(g for g in window.sidebar_model.groups() if g.name == "Anna")
    # the file is damaged while open (a failing disk, a sync tool writing into it)
    pages = path.stat().st_size // 4096
    for page in range(3, pages):
        overwrite_page(path, page, seed=page)
    window.refresh()
    qtbot.waitUntil(lambda: visible_box("restoreBackupBox") is not None, timeout=30_000)
    box = visible_box("restoreBackupBox")
    assert box.text().startswith("The library lib.sqlite is damaged: part of the file can no")
    assert "Restore the backup of" in box.text()
    assert "malformed" not in box.text() and "faceapp" not in box.text()
    assert "database disk image is malformed" in box.detailedText()  # Show Details…
    # an operation on the damaged file: no second prompt, no raw text anywhere
    window.session.set_hidden(GroupKey(GroupKind.PERSON, anna.id), True)
    assert "is damaged" in window.statusBar().currentMessage()  # why it did nothing
    window.refresh()
    qtbot.wait(500)
    prompts = [w for w in QApplication.topLevelWidgets() if w.objectName() == "restoreBackupBox"]
    assert sum(w.isVisible() for w in prompts) == 1
    assert all("malformed" not in text for _title, text in window.errors), window.errors
    box.close()
