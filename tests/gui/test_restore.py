"""A damaged library in the GUI: the newest good backup is offered, restored and opened."""

from __future__ import annotations

import gc

from damaged_library import built_library, labels_in, overwrite_page
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from faceapp.engine import backup


def restore_box() -> QMessageBox | None:
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() == "restoreBackupBox" and widget.isVisible():
            return widget
    return None


def test_a_damaged_library_offers_its_newest_good_backup(qtbot, window, tmp_path):
    path = tmp_path / "lib.sqlite"
    lib = built_library(path)
    backup.make_backup(lib, "after-edits")
    labels = labels_in(path)
    lib.close()
    gc.collect()
    overwrite_page(path, -1)
    window.session.open_library_file(path, scan=False)
    qtbot.waitUntil(lambda: restore_box() is not None, timeout=30_000)
    box = restore_box()
    assert "is damaged" in box.text() and "Restore the backup of" in box.text()
    assert "faceapp restore" not in box.text()  # a button, not a command, in the GUI
    assert "Traceback" not in box.text()
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.lib is not None, timeout=30_000)
    assert window.errors == []
    assert labels_in(path) == labels
    assert len(list(tmp_path.glob("lib.sqlite.damaged-*[0-9]"))) == 1


def test_a_session_with_edits_is_backed_up_when_it_ends(qtbot, window, tmp_path):
    from faceapp.engine import album, people

    path = tmp_path / "lib.sqlite"
    built_library(path, photos=30).close()
    window.session.open_library_file(path, scan=False)
    qtbot.waitUntil(lambda: window.session.lib is not None, timeout=30_000)
    anna = album.parse_group_ref(window.session.lib, "Anna")[1]
    people.rename_person(window.session.lib, anna, "Anna K")  # as a GUI command does
    assert backup.backups(path) == []
    window.session.shutdown()
    assert [b.reason for b in backup.backups(path)] == ["after-edits"]
    assert "Anna K" in labels_in(backup.backups(path)[0].path).values()
