"""Naming from every place faces are shown, through the real window on real LFW faces.

The Unknown grid and a cluster (selected faces become a new person), a person
(faces move to a person named before), the photo view (F2 names the selected
box's group, not the sidebar's; Delete takes the box's face out of its group;
the box's context menu), and a second window on the same library.
"""

from __future__ import annotations

import pytest
from guihelpers import groups, open_and_wait, person, settle
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QMenu

from faceapp.gui.dialogs.name import NameDialog
from faceapp.gui.groups import GroupKey, GroupKind

pytestmark = pytest.mark.slow


def answer_name_dialog(monkeypatch, name: str, seen: list | None = None) -> None:
    def fake_exec(dialog: NameDialog) -> int:
        dialog.edit.setText(name)
        if seen is not None:
            seen.append((dialog.windowTitle(), dialog.note.text()))
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)


def select_rows(window, rows: list[int]) -> list[int]:
    sel = window.grid.selectionModel()
    sel.clearSelection()
    for r in rows:
        sel.select(window.grid_model.index(r), QItemSelectionModel.SelectionFlag.Select)
    return window.grid.selected_face_ids()


def show_group(qtbot, window, key: GroupKey) -> None:
    assert window.sidebar.select_key(key)
    qtbot.waitUntil(lambda: window.current_key == key and window.grid_model.rowCount() > 0)


def test_selected_faces_of_a_cluster_become_a_new_person_then_join_it(
    qtbot, window, scanned_library, monkeypatch
):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = max(groups(window, "cluster"), key=lambda g: g.count)
    key = GroupKey(GroupKind.CLUSTER, cluster.id)
    show_group(qtbot, window, key)
    chosen = select_rows(window, [0])
    assert window.act_move.isEnabled()
    seen: list = []
    answer_name_dialog(monkeypatch, "Only Once", seen)
    window.act_move.trigger()
    qtbot.waitUntil(lambda: person(window, "Only Once") is not None)
    assert seen[-1] == ("Name Faces", "A new person “Only Once” will be made from these faces.")
    new = person(window, "Only Once")
    assert new.count == 1
    assert window.session.group_faces(GroupKey(GroupKind.PERSON, new.id)) == chosen
    # The same dialog adds more faces to the person named before.
    show_group(qtbot, window, key)
    more = select_rows(window, [0, 1])
    window.act_move.trigger()
    qtbot.waitUntil(lambda: person(window, "Only Once").count == 3)
    assert "already exists" in seen[-1][1]
    assert set(more) <= set(window.session.group_faces(GroupKey(GroupKind.PERSON, new.id)))
    # Undo takes the last step back.
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: person(window, "Only Once").count == 1)
    assert not window.errors, window.errors


def test_unknown_faces_can_be_named(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = min(groups(window, "cluster"), key=lambda g: g.count)
    # Make some faces unknown ("not in this group"), then name one from the Unknown grid.
    key = GroupKey(GroupKind.CLUSTER, cluster.id)
    show_group(qtbot, window, key)
    loose = select_rows(window, [0])
    window.act_reject.trigger()
    unknown = GroupKey(GroupKind.UNKNOWN, 0)
    qtbot.waitUntil(lambda: window.sidebar_model.group(unknown) is not None)
    show_group(qtbot, window, unknown)
    row = window.grid_model.row_of(loose[0])
    assert row >= 0
    select_rows(window, [row])
    assert window.act_name.isEnabled() and window.act_move.isEnabled()  # F2 names them too
    answer_name_dialog(monkeypatch, "Seen Once")
    window.act_move.trigger()
    qtbot.waitUntil(lambda: person(window, "Seen Once") is not None)
    pid = person(window, "Seen Once").id
    assert window.session.group_faces(GroupKey(GroupKind.PERSON, pid)) == loose
    # Unknown faces stay on screen for the next person seen once; the named face left it.
    qtbot.waitUntil(lambda: not window.refreshing)
    assert window.current_key == unknown or window.sidebar_model.group(unknown) is None
    assert window.grid_model.row_of(loose[0]) < 0
    assert not window.errors, window.errors


def test_photo_view_box_f2_delete_and_menu_act_on_the_box(
    qtbot, window, scanned_library, monkeypatch
):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    a, b = sorted(groups(window, "cluster"), key=lambda g: -g.count)[:2]
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, a.id), "Box Owner")
    qtbot.waitUntil(lambda: person(window, "Box Owner") is not None)
    owner = GroupKey(GroupKind.PERSON, person(window, "Box Owner").id)
    face = window.session.group_faces(owner)[0]
    # The sidebar shows another group while the photo of Box Owner's face is open.
    other = GroupKey(GroupKind.CLUSTER, b.id)
    show_group(qtbot, window, other)
    window.show_photo(face)
    qtbot.waitUntil(lambda: window.photo_view.loaded, timeout=10_000)
    assert window.photo_view.selected_face() == face
    seen: list = []
    answer_name_dialog(monkeypatch, "Box Renamed", seen)
    qtbot.keyClick(window.photo_view.canvas, Qt.Key.Key_F2)
    qtbot.waitUntil(lambda: person(window, "Box Renamed") is not None)
    assert seen[-1][0] == "Rename Person"
    assert window.sidebar_model.group(other) is not None  # the cluster was not named
    assert person(window, "Box Renamed").id == owner.id

    # The box's context menu names this one face as a new person.
    def run_menu(menu: QMenu, *args) -> None:
        item = next(a for a in menu.actions() if a.text() == "Name This Face…")
        item.trigger()

    window.exec_menu = run_menu
    answer_name_dialog(monkeypatch, "Just This Face")
    window.photo_view.faceMenuRequested.emit(
        face, window.photo_view.mapToGlobal(window.rect().center())
    )
    qtbot.waitUntil(lambda: person(window, "Just This Face") is not None)
    assert person(window, "Just This Face").count == 1
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: person(window, "Just This Face") is None)

    # Delete on the selected box: the face leaves its person (remembered as "not this").
    window.show_photo(face)
    qtbot.waitUntil(lambda: window.photo_view.loaded, timeout=10_000)
    assert window.act_reject_box.isEnabled()
    count = person(window, "Box Renamed").count
    qtbot.keyClick(window.photo_view.canvas, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: person(window, "Box Renamed").count == count - 1)
    assert face not in window.session.group_faces(owner)
    assert not window.errors, window.errors


def test_open_containing_folder_says_when_nothing_opened_it(
    qtbot, window, scanned_library, monkeypatch
):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = groups(window, "cluster")[0]
    face = window.session.group_faces(GroupKey(GroupKind.CLUSTER, cluster.id))[0]
    window.show_photo(face)
    from faceapp.gui.views import photo_view

    monkeypatch.setattr(
        photo_view, "QDesktopServices", type("D", (), {"openUrl": staticmethod(lambda url: False)})
    )
    window.photo_view.open_folder.click()
    assert window.errors and window.errors[-1][0] == "Open Containing Folder"
    assert str(window.photo_view.path.parent) in window.errors[-1][1]


def test_a_second_window_sees_the_first_windows_changes(qtbot, window, scanned_library):
    from faceapp.gui.main_window import MainWindow

    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    second = MainWindow(probe_weights=False)
    second.show_error = lambda title, text: window.errors.append((title, text))
    qtbot.addWidget(second)
    second.session.library_watch.set_interval(200)
    second.session.open_library_file(library, scan=False)
    qtbot.waitUntil(lambda: second.session.lib is not None and second.sidebar_model.rowCount() > 0)
    settle(qtbot, second)
    cluster = groups(second, "cluster")[0]
    second.sidebar.select_key(GroupKey(GroupKind.CLUSTER, cluster.id))
    # The first window names that cluster; the second shows it without any action.
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, cluster.id), "Named Elsewhere")
    qtbot.waitUntil(lambda: person(second, "Named Elsewhere") is not None, timeout=10_000)
    assert second.sidebar_model.group(GroupKey(GroupKind.CLUSTER, cluster.id)) is None
    assert not window.errors, window.errors
    second.session.close_library()


def test_a_box_named_in_the_photo_view_shows_its_new_name(
    qtbot, window, scanned_library, monkeypatch
):
    """The photo stays open while a box is named: its label follows (and follows undo),
    and the naming dialog shows the face, even one whose thumbnail was not decoded yet."""
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = groups(window, "cluster")[0]
    face = window.session.group_faces(GroupKey(GroupKind.CLUSTER, cluster.id))[0]
    window.thumbs.invalidate([face])
    window.show_photo(face)
    qtbot.waitUntil(lambda: window.photo_view.loaded, timeout=10_000)

    def label() -> str:
        marks = window.photo_view.canvas.faces()
        return marks[window.photo_view.face_ids.index(face)].label

    assert label() == f"Cluster {cluster.id}"
    from faceapp.engine import photos

    taken = photos.photo(window.session.lib, window.session.lib.face(face).photo_id).taken_at
    assert f"taken {taken[:10]}" in window.photo_view.subtitle.text()  # when, beside where
    seen: list = []

    def fake_exec(dialog: NameDialog) -> int:
        qtbot.waitUntil(lambda: dialog.face.image is not None)
        seen.append(dialog.findChildren(type(dialog.note))[0].text())
        dialog.edit.setText("Named On The Photo")
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)
    window.name_faces_dialog([face])
    qtbot.waitUntil(lambda: label() == "Named On The Photo")
    assert seen == ["Who is this? Type a new name or one you named before."]
    assert window.photo_view.selected_face() == face

    # F2 on the box renames that person of one face: "(1 face)", not "(1 faces)".
    def look_and_cancel(dialog: NameDialog) -> int:
        seen.append(dialog.findChildren(type(dialog.note))[0].text())
        return NameDialog.DialogCode.Rejected

    monkeypatch.setattr(NameDialog, "exec", look_and_cancel)
    qtbot.keyClick(window.photo_view.canvas, Qt.Key.Key_F2)
    assert seen[-1] == "Who is this? (1 face)"
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: label() == f"Cluster {cluster.id}")
    assert not window.errors, window.errors
