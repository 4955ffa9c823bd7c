"""A person's page through the real window: Faces and Photos (by date, with the age
once a birth date is set), several people's photos together, previous / next in the
photo view, the cover face."""

from __future__ import annotations

import pytest
from guihelpers import groups, open_and_wait, person
from PySide6.QtCore import QItemSelectionModel, Qt

from faceapp.gui.dialogs.name import NameDialog
from faceapp.gui.groups import GroupKey, GroupKind

pytestmark = pytest.mark.slow


def test_person_photos_birth_date_together_and_cover(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    a, b = sorted(groups(window, "cluster"), key=lambda g: -g.count)[:2]
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, a.id), "Ann")
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, b.id), "Bob")
    qtbot.waitUntil(lambda: person(window, "Bob") is not None and not window.refreshing)
    ann = GroupKey(GroupKind.PERSON, person(window, "Ann").id)
    window.sidebar.select_key(ann)
    qtbot.waitUntil(lambda: window.current_key == ann)
    page = window.grid_page
    assert page.tabs.isVisible() and page.tabs.tabText(1) == "Photos"

    # Birth date in the Edit Person dialog (before every photo's date: LFW files are new).
    def fake_exec(dialog: NameDialog) -> int:
        dialog.birth.setText("1990-01-01")
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)
    window.act_edit_person.trigger()
    qtbot.waitUntil(lambda: "born 1990-01-01" in page.subtitle.text())

    with qtbot.waitSignal(window.photos_loaded, timeout=30_000):
        page.tabs.setCurrentIndex(page.PHOTOS)
    grid = window.photo_grid
    n = grid.count()
    assert n == person(window, "Ann").count  # one face of Ann per photo
    dates = [p.taken_at for p in grid.photos]
    assert dates == sorted(dates)
    assert "age " in grid.item(0).text() and grid.item(0).text()[:2] in ("19", "20")
    qtbot.waitUntil(lambda: grid.loaded, timeout=30_000)
    assert not grid.item(0).icon().isNull()

    # Open a photo from the grid; Next / Previous step through Ann's photos.
    grid.itemActivated.emit(grid.item(0))
    assert window.content.currentWidget() is window.photo_view
    assert window.photo_view.position.text() == f"1 of {n}"
    first = window.photo_view.path
    qtbot.keyClick(window.photo_view.canvas, Qt.Key.Key_Right)
    assert window.photo_view.path != first and window.photo_view.position.text() == f"2 of {n}"
    window.photo_view.prev.click()
    assert window.photo_view.path == first
    window.act_back.trigger()

    # Ann and Bob together (Ctrl-click in the sidebar): photos with both (none here).
    sel = window.sidebar.selectionModel()
    bob = GroupKey(GroupKind.PERSON, person(window, "Bob").id)
    row = window.sidebar_model.index(window.sidebar_model.row_of(bob))
    with qtbot.waitSignal(window.photos_loaded, timeout=30_000):
        sel.select(row, QItemSelectionModel.SelectionFlag.Select)
    assert page.title.text() in ("Ann & Bob", "Bob & Ann")
    assert page.tabs.currentIndex() == page.PHOTOS and not page.tabs.isTabEnabled(page.FACES)
    assert grid.count() == 0  # LFW photos of two people show one of them
    # Rename / Hide / Not This Person would act on one of them only: not offered here.
    buttons = (page.name_button, page.hide_button, page.reject_button)
    assert not any(b.isVisible() for b in buttons)

    # Make a face Ann's cover: the sidebar shows it.
    window.sidebar.select_key(ann)
    qtbot.waitUntil(lambda: window.current_key == ann and window.grid_model.rowCount() > 1)
    page.tabs.setCurrentIndex(page.FACES)
    last = window.grid_model.rowCount() - 1
    window.grid.selectionModel().select(
        window.grid_model.index(last), QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    face = window.grid_model.face_at(last)
    assert window.act_cover.isEnabled()
    window.act_cover.trigger()
    qtbot.waitUntil(lambda: person(window, "Ann").avatar_face_id == face)
    window.act_undo.trigger()  # the cover and the birth date are undoable steps
    qtbot.waitUntil(lambda: person(window, "Ann").avatar_face_id != face)
    assert not window.errors, window.errors


def test_drawing_a_box_adds_a_missed_face(qtbot, window, scanned_library, monkeypatch):
    from PySide6.QtCore import QPoint

    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = groups(window, "cluster")[0]
    face = window.session.group_faces(GroupKey(GroupKind.CLUSTER, cluster.id))[0]
    window.show_photo(face)
    qtbot.waitUntil(lambda: window.photo_view.loaded, timeout=10_000)
    before = len(window.photo_view.face_ids)
    assert window.act_add_face.isEnabled()
    window.act_add_face.trigger()
    canvas = window.photo_view.canvas
    assert canvas.drawing
    target = canvas._target()
    # A box in the top-left corner of the photo, where no face was found.
    start = QPoint(int(target.left() + 4), int(target.top() + 4))
    end = QPoint(
        int(target.left() + target.width() * 0.3), int(target.top() + target.height() * 0.3)
    )

    def draw() -> None:
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(canvas, end)
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)

    # Asked before anything is added: a box drawn by mistake and cancelled leaves no face.
    shown: list = []

    def cancel(dialog: NameDialog) -> int:
        shown.append(dialog.face.image)
        return NameDialog.DialogCode.Rejected

    monkeypatch.setattr(NameDialog, "exec", cancel)
    faces_before = len(window.session.lib.faces())
    draw()
    assert shown and shown[0] is not None and not shown[0].isNull()  # the drawn part
    qtbot.wait(300)
    assert len(window.session.lib.faces()) == faces_before
    assert len(window.photo_view.face_ids) == before
    window.act_add_face.trigger()

    def fake_exec(dialog: NameDialog) -> int:
        dialog.edit.setText("Drawn Face")
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)
    with qtbot.waitSignal(window.face_added, timeout=120_000) as added:
        draw()
    new_face = added.args[0]
    assert not canvas.drawing
    qtbot.waitUntil(lambda: person(window, "Drawn Face") is not None)
    pid = person(window, "Drawn Face").id
    assert window.session.group_faces(GroupKey(GroupKind.PERSON, pid)) == [new_face]
    assert window.session.lib.face(new_face).photo_id == window.session.lib.face(face).photo_id
    assert len(window.photo_view.face_ids) == before + 1
    assert not window.errors, window.errors

    # A box drawn over a face found already: said at once, nothing asked or added.
    rect = canvas.face_rect(window.photo_view.face_ids.index(face))
    start, end = rect.topLeft().toPoint(), rect.bottomRight().toPoint()
    shown.clear()
    monkeypatch.setattr(NameDialog, "exec", cancel)
    window.act_add_face.trigger()
    draw()
    assert window.errors[-1] == (
        "Add a Missed Face",
        "That face is marked already: click its box.",
    )
    assert not shown and len(window.photo_view.face_ids) == before + 1


def test_searching_shows_the_first_person_found_or_says_nobody(qtbot, window, scanned_library):
    """Typing in the search field hid the group shown and left "No faces yet / Open a
    folder" on screen: the first person found is shown, or a line says nobody matched."""
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    a = sorted(groups(window, "cluster"), key=lambda g: -g.count)[0]
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, a.id), "Annika Strand")
    qtbot.waitUntil(lambda: person(window, "Annika Strand") is not None and not window.refreshing)
    other = groups(window, "cluster")[0]
    window.sidebar.select_key(GroupKey(GroupKind.CLUSTER, other.id))
    annika = GroupKey(GroupKind.PERSON, person(window, "Annika Strand").id)
    qtbot.keyClicks(window.sidebar_panel.search, "strand")
    qtbot.waitUntil(lambda: window.current_key == annika)
    assert window.grid_page.title.text() == "Annika Strand"
    assert window.grid_model.rowCount() == person(window, "Annika Strand").count
    qtbot.keyClicks(window.sidebar_panel.search, "xyz")
    qtbot.waitUntil(lambda: window.grid_page.title.text() == "Nobody found")
    assert window.grid_page.subtitle.text() == "No person’s name contains “strandxyz”"
    assert not window.grid_page.tabs.isVisible()
    window.sidebar_panel.search.clear()
    assert window.sidebar_model.first_group_row() >= 0
    assert not window.errors, window.errors
