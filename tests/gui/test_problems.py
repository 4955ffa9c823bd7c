"""Scan problems stay visible: the status bar button, the Problems list and Try Again."""

from __future__ import annotations

import shutil

import pytest
from guihelpers import SCAN_TIMEOUT, settle

pytestmark = pytest.mark.slow


def test_problems_list_and_try_again(qtbot, window, scanned_template, tmp_path, lfw_dir):
    template_folder, template_library = scanned_template
    folder = tmp_path / "album"
    shutil.copytree(template_folder, folder)
    library = tmp_path / "library.sqlite"
    shutil.copy2(template_library, library)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a photo")
    window.session.open_folder(folder, scan=True, library_path=library)
    qtbot.waitUntil(lambda: window.session.last_report is not None, timeout=SCAN_TIMEOUT)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=SCAN_TIMEOUT)
    settle(qtbot, window)
    button = window.problems_button
    n = len(window.problems)
    assert button.isVisible() and button.text() == f"{n} {'problem' if n == 1 else 'problems'}"
    button.click()
    dialog = window.problems_dialog
    assert dialog.isVisible() and dialog.table.rowCount() == n
    them = "it" if n == 1 else "them"
    assert f"could not be used. Fix or replace {them}, then Try Again" in dialog.summary.text()
    files = [dialog.table.item(r, 0).text() for r in range(n)]
    row = files.index("broken.jpg")
    assert dialog.table.item(row, 1).text()  # the engine's reason
    assert dialog.table.item(row, 2).text()[:2] == "20"  # when it was tried
    menu = window.menuBar().actions()[0].menu().actions()
    assert window.act_problems in menu
    dialog.table.selectRow(row)
    # The file is replaced by a real photo: Try Again reads it in a worker.
    shutil.copy2(sorted((lfw_dir / "Colin_Powell").iterdir())[20], broken)  # not in the album
    dialog.try_again.click()
    qtbot.waitUntil(lambda: window.session.busy, timeout=10_000)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=SCAN_TIMEOUT)
    settle(qtbot, window)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == n - 1)
    rows = [dialog.table.item(r, 0).text() for r in range(n - 1)]
    assert "broken.jpg" not in rows
    assert button.isVisible() == (n > 1)
    assert window.session.last_report.photos == 1
    assert not window.errors, window.errors
