"""Verify two photos (real weights) and answer review suggestions with the keyboard."""

from __future__ import annotations

import shutil

import pytest
from guihelpers import SCAN_TIMEOUT, groups, majority_names, open_and_wait, person, settle
from PySide6.QtCore import Qt

from faceapp.gui.groups import GroupKey
from faceapp.gui.mime import faces_to_mime


@pytest.mark.slow
def test_verify_same_and_different_people(qtbot, window, lfw_dir):
    dialog = window.show_verify()
    assert dialog.verdict_label.text() == "Choose two photos"
    powell = lfw_dir / "Colin_Powell"
    dialog.set_photo(0, powell / "Colin_Powell_0001.jpg")
    dialog.set_photo(1, powell / "Colin_Powell_0002.jpg")
    qtbot.waitUntil(lambda: dialog.verdict is not None, timeout=SCAN_TIMEOUT)
    assert dialog.verdict.same
    assert dialog.verdict_label.text() == "Same person"
    assert dialog.verdict.distance < dialog.verdict.threshold
    assert dialog.bar.distance == pytest.approx(dialog.verdict.distance)
    assert dialog.verdict.threshold_source in dialog.source_label.text()
    assert dialog.crops[0].image is not None and dialog.crops[1].image is not None

    dialog.set_photo(1, lfw_dir / "Serena_Williams" / "Serena_Williams_0001.jpg")
    assert dialog.verdict is None  # a new photo clears the old verdict
    qtbot.waitUntil(lambda: dialog.verdict is not None, timeout=SCAN_TIMEOUT)
    assert not dialog.verdict.same
    assert dialog.verdict_label.text() == "Different people"
    assert dialog.verdict.distance >= dialog.verdict.threshold
    assert not window.errors, window.errors
    dialog.close()


@pytest.mark.slow
def test_verify_waits_for_the_clicked_face_in_a_group_photo(qtbot, window, lfw_dir):
    """A photo with several faces: no verdict until the user clicks the face to compare."""
    dialog = window.show_verify()
    group_photo = next(
        p
        for p in (
            lfw_dir / "Colin_Powell" / "Colin_Powell_0011.jpg",  # three faces
            lfw_dir / "George_W_Bush" / "George_W_Bush_0018.jpg",
        )
        if p.exists()
    )
    dialog.set_photo(0, lfw_dir / "Colin_Powell" / "Colin_Powell_0001.jpg")
    dialog.set_photo(1, group_photo)
    qtbot.waitUntil(lambda: not dialog.busy(), timeout=SCAN_TIMEOUT)
    pane = dialog.panes[1]
    if len(pane.faces) < 2:
        pytest.skip("this LFW photo shows a single face with these detector settings")
    assert dialog.verdict is None and pane.chosen is None
    assert dialog.verdict_label.text() == "Click the face to compare in photo B"
    assert dialog.bar.distance is None
    for i in range(len(pane.faces)):
        rect = pane.canvas.face_rect(i)
        qtbot.mouseClick(pane.canvas, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
        assert pane.chosen == i
        assert dialog.verdict is not None
        assert dialog.bar.distance == pytest.approx(dialog.verdict.distance)


@pytest.mark.slow
def test_verify_accepts_a_face_dragged_from_the_grid(qtbot, window, scanned_library):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    key = GroupKey("cluster", groups(window, "cluster")[0].id)
    faces = window.session.group_faces(key)
    dialog = window.show_verify()
    assert dialog.panes[0].handle_mime(faces_to_mime([faces[0]], key))
    assert dialog.panes[1].handle_mime(faces_to_mime([faces[1]], key))
    qtbot.waitUntil(lambda: dialog.verdict is not None, timeout=SCAN_TIMEOUT)
    assert dialog.verdict.same  # two faces of one cluster
    dialog.close()


@pytest.mark.slow
def test_review_suggestions_with_keyboard(qtbot, window, scanned_template, tmp_path, lfw_dir):
    """Name the clusters, add new photos of a named person, answer "Is this X?" with Y / N."""
    template_folder, template_library = scanned_template
    folder = tmp_path / "album"
    shutil.copytree(template_folder, folder)
    library = tmp_path / "library.sqlite"
    shutil.copy2(template_library, library)
    window.session.open_folder(folder, scan=False, library_path=library)
    qtbot.waitUntil(lambda: window.session.lib is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.sidebar_model.rowCount() > 0)
    settle(qtbot, window)
    for cid, name in majority_names(window).items():
        if person(window, name) is None:
            assert window.apply_name(GroupKey("cluster", cid), name)
    qtbot.waitUntil(lambda: not groups(window, "cluster") and not window.refreshing)
    powell = person(window, "Colin Powell")
    assert powell is not None
    # Three new photos of a named person arrive; rescan (F5).
    new = sorted((lfw_dir / "Colin_Powell").iterdir())[10:13]
    for photo in new:
        shutil.copy2(photo, folder / "Colin_Powell" / photo.name)
    window.act_rescan.trigger()
    qtbot.waitUntil(lambda: window.session.busy, timeout=10_000)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=SCAN_TIMEOUT)
    assert window.session.last_report.photos == 3

    window.act_review.trigger()
    review = window.review_view
    assert window.content.currentWidget() is review
    qtbot.waitUntil(lambda: review.loaded, timeout=60_000)
    assert review.suggestions, "new faces of a named person should be suggested"
    assert review.question.text().startswith("Is this ")
    first = review.current()
    target = person(window, first.person_name)
    count = target.count
    review.setFocus()
    qtbot.keyClick(review, Qt.Key.Key_Y)
    qtbot.waitUntil(lambda: person(window, first.person_name).count == count + 1)
    assert first.face_id in window.session.group_faces(GroupKey("person", target.id))
    assert all(s.face_id != first.face_id for s in review.suggestions)
    answers = 1
    if review.suggestions:
        second = review.current()
        qtbot.keyClick(review, Qt.Key.Key_Right)  # arrows move without answering
        qtbot.keyClick(review, Qt.Key.Key_Left)
        assert review.current().face_id == second.face_id
        qtbot.keyClick(review, Qt.Key.Key_N)

        def still_suggested() -> bool:
            return any(
                s.face_id == second.face_id and s.person_id == second.person_id
                for s in review.suggestions
            )

        qtbot.waitUntil(lambda: not still_suggested())
        assert f"is not {second.person_name}" in window.statusBar().currentMessage()
        answers = 2
    # Answers are undoable like everything else: undoing them takes the face back out.
    for _ in range(answers):
        window.act_undo.trigger()
    qtbot.waitUntil(lambda: person(window, first.person_name).count == count)
    assert first.face_id not in window.session.group_faces(GroupKey("person", target.id))
    assert not window.errors, window.errors
