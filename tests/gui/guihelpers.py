"""Helpers shared by the GUI tests: open a library and wait, find groups, name via F2."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PySide6.QtWidgets import QApplication

from faceapp.gui.dialogs.name import NameDialog
from faceapp.gui.groups import GroupKey

SCAN_TIMEOUT = 600_000  # ms; 2 shared cores, first use converts the weights


def open_and_wait(qtbot, window, folder: Path | None = None, library: Path | None = None):
    """Open a library (a folder, or a library file without rescanning) and wait until idle."""
    session = window.session
    if library is not None:
        session.open_library_file(library, scan=False)
    else:
        window.open_folder(folder)
    qtbot.waitUntil(lambda: session.lib is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not session.busy and not session.opening, timeout=SCAN_TIMEOUT)
    settle(qtbot, window)
    assert not window.errors, window.errors


def settle(qtbot, window) -> None:
    """Wait until the views show the library (reads run in a worker)."""
    qtbot.waitUntil(lambda: not window.refreshing, timeout=60_000)
    QApplication.processEvents()


def groups(window, kind: str | None = None) -> list:
    return [g for g in window.sidebar_model.groups() if kind is None or g.kind == kind]


def person(window, name: str):
    return next((g for g in groups(window, "person") if g.name == name), None)


def majority_names(window) -> dict[int, str]:
    """Cluster id -> the LFW person most of its faces come from (the test's ground truth)."""
    lib = window.session.lib
    out = {}
    for g in groups(window, "cluster"):
        ids = window.session.group_faces(GroupKey("cluster", g.id))
        folders = Counter(lib.face(f).photo_path.split("/")[0] for f in ids)
        out[g.id] = folders.most_common(1)[0][0].replace("_", " ")
    return out


def sidebar_index(window, key: GroupKey):
    row = window.sidebar_model.row_of(key)
    assert row >= 0, key
    return window.sidebar_model.index(row)


def name_via_dialog(qtbot, window, monkeypatch, key: GroupKey, name: str) -> None:
    """Select the group, press F2 and type the name into the real dialog."""

    def fake_exec(dialog: NameDialog) -> int:
        dialog.edit.setText(name)
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)
    assert window.sidebar.select_key(key)
    qtbot.waitUntil(lambda: window.current_key == key)
    assert window.act_name.isEnabled()
    window.act_name.trigger()
    qtbot.waitUntil(lambda: person(window, name) is not None)


def synthetic_album(tmp_path: Path):
    """A library of synthetic faces with a photo folder (tests/engine/synthetic_album.py:
    no scan, no weights), for the window to open."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from synthetic_album import Album

    from faceapp.engine.library import open_library

    (tmp_path / "photos").mkdir()
    path = tmp_path / "lib.sqlite"
    open_library(tmp_path / "photos", path).close()
    album = Album(path)
    return album


def show_library(qtbot, window, path: Path) -> None:
    """Open a library file without scanning and wait until the views show it."""
    window.session.open_library_file(path, scan=False)
    qtbot.waitUntil(
        lambda: window.session.lib is not None and not window.refreshing, timeout=30_000
    )
