"""The real main window, driven offscreen on real LFW photos with the real weights.

Covers: open a folder (scan + clustering in workers, faces appearing while
scanning), name a cluster (F2 + dialog), merge by drag and drop (model drop
and a real QDropEvent), move faces, "not this person", hide, undo/redo,
the photo view, cancel a scan and reopen, the weights banner.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from guihelpers import (
    SCAN_TIMEOUT,
    groups,
    majority_names,
    name_via_dialog,
    open_and_wait,
    person,
    settle,
    show_library,
    sidebar_index,
    synthetic_album,
)
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog

from faceapp.gui.groups import GroupKey
from faceapp.gui.models import Role


@pytest.mark.slow
def test_open_folder_scans_and_clusters(qtbot, window, album, monkeypatch):
    seen_while_scanning: list[int] = []

    def on_refreshed() -> None:
        if window.session.scanning:
            seen_while_scanning.append(sum(g.count for g in window.sidebar_model.groups()))

    window.refreshed.connect(on_refreshed)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(album))
    assert window.pages.currentWidget() is window.welcome
    window.act_open.trigger()
    qtbot.waitUntil(lambda: window.session.scanning, timeout=60_000)
    assert window.scan_panel.isVisible()
    assert window.pages.currentWidget() is window.splitter
    qtbot.waitUntil(lambda: window.session.last_summary is not None, timeout=SCAN_TIMEOUT)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=60_000)
    assert not window.errors, window.errors
    report = window.session.last_report
    assert report.photos == 30 and not report.cancelled and not report.errors
    assert report.faces >= 30
    # Faces appeared in the window while the scan was still running (the views refresh
    # every second, so this needs a scan that takes a few seconds, as it does on a CPU).
    if report.seconds > 3:
        assert any(0 < n < report.faces for n in seen_while_scanning), seen_while_scanning
    settle(qtbot, window)
    clusters = groups(window, "cluster")
    assert len(clusters) >= 4, [(g.kind, g.count) for g in groups(window)]
    assert not window.scan_panel.isVisible()
    # A group is selected and its faces are in the grid.
    assert window.current_key is not None
    assert window.grid_model.rowCount() == window.sidebar_model.group(window.current_key).count
    assert "face" in window.counts_label.text()
    recent = window.settings.recent()
    assert recent and Path(recent[0].folder) == album.resolve()


@pytest.mark.slow
def test_name_merge_move_reject_hide_undo_redo(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    truth = majority_names(window)
    clusters = sorted(groups(window, "cluster"), key=lambda g: -g.count)
    a, b, c = clusters[0], clusters[1], clusters[2]

    # Name a cluster with F2 and the dialog.
    name_via_dialog(qtbot, window, monkeypatch, GroupKey("cluster", a.id), truth[a.id])
    alpha = person(window, truth[a.id])
    assert alpha.count == a.count
    assert window.current_key == GroupKey("person", alpha.id)
    assert "Named" in window.statusBar().currentMessage()

    # Merge: drag cluster c onto the person (the sidebar model's own MIME data and drop).
    model = window.sidebar_model
    data = model.mimeData([sidebar_index(window, GroupKey("cluster", c.id))])
    target = sidebar_index(window, GroupKey("person", alpha.id))
    assert model.dropMimeData(data, Qt.DropAction.MoveAction, -1, -1, target)
    qtbot.waitUntil(lambda: person(window, truth[a.id]).count == a.count + c.count)
    assert window.sidebar_model.group(GroupKey("cluster", c.id)) is None

    # Name cluster b, then merge the two people with a real drop event on the sidebar:
    # two named people ask first.
    name_via_dialog(qtbot, window, monkeypatch, GroupKey("cluster", b.id), "Beta Person")
    beta = person(window, "Beta Person")
    data = model.mimeData([sidebar_index(window, GroupKey("person", beta.id))])
    target = sidebar_index(window, GroupKey("person", alpha.id))
    pos = window.sidebar.visualRect(target).center()
    event = QDropEvent(
        QPointF(pos),
        Qt.DropAction.MoveAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # The view's own drop handler (QApplication routes a Drop only inside a real drag,
    # which the offscreen platform cannot start).
    window.sidebar.dropEvent(event)
    assert event.isAccepted()
    qtbot.waitUntil(lambda: person(window, "Beta Person") is None)
    assert window.asked and window.asked[-1][0] == "Merge People"
    merged = a.count + b.count + c.count
    assert person(window, truth[a.id]).count == merged

    # Undo the people merge, then move one face from Beta to Alpha by dragging it.
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: person(window, "Beta Person") is not None)
    assert "Undid" in window.statusBar().currentMessage()
    beta_key = GroupKey("person", person(window, "Beta Person").id)
    window.sidebar.select_key(beta_key)
    qtbot.waitUntil(lambda: window.current_key == beta_key)
    first = window.grid_model.index(0)
    moved_face = window.grid_model.face_at(0)
    data = window.grid_model.mimeData([first])
    target = sidebar_index(window, GroupKey("person", alpha.id))
    assert model.dropMimeData(data, Qt.DropAction.MoveAction, -1, -1, target)
    qtbot.waitUntil(lambda: person(window, "Beta Person").count == b.count - 1)
    assert person(window, truth[a.id]).count == a.count + c.count + 1
    assert moved_face in window.session.group_faces(GroupKey("person", alpha.id))

    # Undo the move; redo it.
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: person(window, "Beta Person").count == b.count)
    window.act_redo.trigger()
    qtbot.waitUntil(lambda: person(window, "Beta Person").count == b.count - 1)
    assert "Redid" in window.statusBar().currentMessage()

    # "Not this person" (Delete) on a selected face of Alpha; undo brings it back.
    alpha_key = GroupKey("person", alpha.id)
    window.sidebar.select_key(alpha_key)
    qtbot.waitUntil(lambda: window.current_key == alpha_key)
    before = person(window, truth[a.id]).count
    window.grid.setFocus()
    window.grid.selectionModel().select(
        window.grid_model.index(0), window.grid.selectionModel().SelectionFlag.ClearAndSelect
    )
    rejected = window.grid_model.face_at(0)
    assert window.act_reject.isEnabled()
    window.act_reject.trigger()
    qtbot.waitUntil(lambda: person(window, truth[a.id]).count == before - 1)
    assert rejected not in window.session.group_faces(alpha_key)
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: person(window, truth[a.id]).count == before)

    # Hide and show again (undo).
    window.sidebar.select_key(alpha_key)
    window.act_hide.trigger()
    qtbot.waitUntil(lambda: person(window, truth[a.id]).hidden)
    row = window.sidebar_model.row_of(alpha_key)
    assert window.sidebar_model.index(row).data(Role.SECTION) == "hidden"
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: not person(window, truth[a.id]).hidden)

    # Rename a person.
    name_via_dialog(qtbot, window, monkeypatch, alpha_key, "Alpha Renamed")
    assert person(window, "Alpha Renamed").id == alpha.id
    assert not window.errors, window.errors


@pytest.mark.slow
def test_undo_history_survives_reopening(qtbot, window, scanned_library):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = groups(window, "cluster")[0]
    assert window.apply_name(GroupKey("cluster", cluster.id), "Persistent")
    qtbot.waitUntil(lambda: person(window, "Persistent") is not None)
    window.close_library()
    assert window.pages.currentWidget() is window.welcome
    open_and_wait(qtbot, window, library=library)
    assert window.act_undo.isEnabled() and "Persistent" in window.act_undo.text()
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: person(window, "Persistent") is None)
    assert window.sidebar_model.group(GroupKey("cluster", cluster.id)) is not None


@pytest.mark.slow
def test_photo_view_shows_every_face_with_names(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = groups(window, "cluster")[0]
    assert window.apply_name(GroupKey("cluster", cluster.id), "Someone")
    qtbot.waitUntil(lambda: person(window, "Someone") is not None)
    key = GroupKey("person", person(window, "Someone").id)
    window.sidebar.select_key(key)
    qtbot.waitUntil(lambda: window.grid_model.rowCount() > 0)
    rect = window.grid.visualRect(window.grid_model.index(0))
    qtbot.mouseDClick(window.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.content.currentWidget() is window.photo_view
    qtbot.waitUntil(lambda: window.photo_view.loaded, timeout=10_000)
    marks = window.photo_view.canvas.faces()
    assert marks and any(m.label == "Someone" for m in marks)
    assert window.photo_view.path.is_file()
    assert window.photo_view.canvas._image is not None
    opened = []
    from faceapp.gui.views import photo_view

    monkeypatch.setattr(
        photo_view, "QDesktopServices", type("D", (), {"openUrl": staticmethod(opened.append)})
    )
    window.photo_view.open_folder.click()
    assert opened and Path(opened[0].toLocalFile()) == window.photo_view.path.parent
    window.act_back.trigger()
    assert window.content.currentWidget() is window.grid_page


@pytest.mark.slow
def test_cancel_scan_then_reopen_resumes(qtbot, window, album):
    window.open_folder(album)
    qtbot.waitUntil(
        lambda: window.session.last_progress is not None and window.session.last_progress.done > 0,
        timeout=SCAN_TIMEOUT,
    )
    assert window.act_cancel.isEnabled()
    window.act_cancel.trigger()
    qtbot.waitUntil(lambda: not window.session.scanning, timeout=120_000)
    first = window.session.last_report
    assert first.cancelled and 0 < first.photos < 30
    assert not window.session.clustering  # a cancelled scan does not start clustering
    assert not window.scan_panel.isVisible()
    assert "cancelled" in window.statusBar().currentMessage().lower()
    # Reopen from the recent list: the scan resumes with the photos not yet stored.
    window.close_library()
    recent = window.settings.recent()[0]
    window.open_recent(recent)
    qtbot.waitUntil(lambda: window.session.lib is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.session.last_report is not first, timeout=SCAN_TIMEOUT)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=SCAN_TIMEOUT)
    second = window.session.last_report
    assert not second.cancelled
    assert second.skipped_unchanged == first.photos
    assert second.photos == 30 - first.photos
    assert not window.errors, window.errors


def test_missing_weights_show_a_banner_not_a_crash(qtbot, window, album, monkeypatch, tmp_path):
    from faceapp.engine import weights

    def no_weights(*args, **kwargs):
        raise weights.WeightsError("No face recognition weights found. Do one of: …")

    monkeypatch.setattr(weights, "resolve_weights", no_weights)
    window.session.probe_weights()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=60_000)
    assert "No face recognition weights found" in window.banner.text.text()
    assert window.banner.button.text() == "Choose Weights File…"
    assert window.weights_label.text() == "No weights"
    # Scanning without weights fails into the banner too, and the window stays usable.
    window.banner.hide()
    window.open_folder(album)
    qtbot.waitUntil(lambda: window.session.lib is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=120_000)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=60_000)
    assert not window.errors
    # Choosing a broken file says why, still in the banner.
    monkeypatch.undo()
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a state dict")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    window.banner.hide()
    window.banner.button.click()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=60_000)
    assert window.settings.weights_path == bad


def test_recent_library_that_vanished_is_dropped(qtbot, window, tmp_path):
    from faceapp.gui.settings import RecentLibrary

    window.settings.add_recent(tmp_path / "gone", tmp_path / "gone.sqlite")
    window.welcome.set_recent(window.settings.recent())
    window.open_recent(RecentLibrary(str(tmp_path / "gone"), str(tmp_path / "gone.sqlite")))
    assert window.settings.recent() == []
    assert window.errors and "no longer exists" in window.errors[-1][1]


def test_dropping_files_on_verify_accepts_local_urls(qtbot, window, lfw_dir):
    dialog = window.show_verify()
    data = QMimeData()
    photo = lfw_dir / "Colin_Powell" / "Colin_Powell_0001.jpg"
    data.setUrls([QUrl.fromLocalFile(str(photo))])
    chosen = []
    dialog.panes[0].photoDropped.disconnect()
    dialog.panes[0].photoDropped.connect(lambda path, box: chosen.append((path, box)))
    assert dialog.panes[0].handle_mime(data)
    assert chosen == [(photo, None)]
    dialog.close()


def test_shortcuts_are_the_standard_ones(window):
    def keys(action) -> set[str]:
        return {s.toString() for s in action.shortcuts()}

    assert "Ctrl+O" in keys(window.act_open)
    assert "Ctrl+Z" in keys(window.act_undo)
    assert "Ctrl+Shift+Z" in keys(window.act_redo)
    assert "F2" in keys(window.act_name)
    assert "Del" in keys(window.act_reject)
    assert "F5" in keys(window.act_rescan)
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == ["File", "Edit", "View", "People", "Tools", "Help"]


def test_unknown_faces_have_a_name_selected_button(qtbot, window, tmp_path, monkeypatch):
    """A face seen once sits in Unknown faces: the header offers to name the selection."""
    from faceapp.gui.dialogs.name import NameDialog
    from faceapp.gui.groups import GroupKind

    album = synthetic_album(tmp_path)
    album.lib.close()
    show_library(qtbot, window, album.lib.path)
    key = GroupKey.of(groups(window, "unknown")[0])
    assert key.kind is GroupKind.UNKNOWN and window.sidebar.select_key(key)
    qtbot.waitUntil(lambda: window.current_key == key and window.grid_model.rowCount() > 0)
    button = window.grid_page.name_button
    assert button.isVisible() and button.text() == "Name Selected…"
    assert not button.isEnabled() and not window.act_name.isEnabled()  # nothing selected
    face = window.grid_model.face_at(0)
    window.grid.setCurrentIndex(window.grid_model.index(0))
    assert button.isEnabled() and window.act_name.isEnabled()  # the button and F2
    monkeypatch.setattr(
        NameDialog,
        "exec",
        lambda dialog: (dialog.edit.setText("Seen Once"), NameDialog.DialogCode.Accepted)[1],
    )
    button.click()
    qtbot.waitUntil(lambda: person(window, "Seen Once") is not None)
    assert window.session.group_faces(GroupKey.of(person(window, "Seen Once"))) == [face]
    assert not window.errors, window.errors


def test_closing_the_library_hides_its_problems(qtbot, window, tmp_path):
    album = synthetic_album(tmp_path)
    album.lib.store_photo_error("scan-3.jpg", size=9, mtime_ns=1, reason="not a photo")
    album.lib.close()
    show_library(qtbot, window, album.lib.path)
    qtbot.waitUntil(lambda: window.problems_button.isVisible())
    window.close_library()
    assert window.pages.currentWidget() is window.welcome
    assert not window.problems_button.isVisible()  # the welcome page shows no old problems
