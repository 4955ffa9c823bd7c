"""Review through the real window: cluster suggestions (Yes / No remembered), likely and
unsure faces, "Accept All Likely" as one undo step, "Someone Else…", and the faces
that do not fit a cluster shown apart before it is named."""

from __future__ import annotations

import pytest
from guihelpers import groups, open_and_wait, person
from PySide6.QtCore import QItemSelectionModel, Qt

from faceapp.gui.dialogs.name import NameDialog
from faceapp.gui.groups import GroupKey, GroupKind
from faceapp.gui.views.review import is_cluster_item

pytestmark = pytest.mark.slow


def select_rows(window, key: GroupKey, rows: list[int], qtbot) -> list[int]:
    assert window.sidebar.select_key(key)
    qtbot.waitUntil(lambda: window.current_key == key and window.grid_model.rowCount() > 0)
    sel = window.grid.selectionModel()
    sel.clearSelection()
    for r in rows:
        sel.select(window.grid_model.index(r), QItemSelectionModel.SelectionFlag.Select)
    return window.grid.selected_face_ids()


def open_review(qtbot, window):
    window.act_review.trigger()
    review = window.review_view
    qtbot.waitUntil(lambda: review.loaded and not window.refreshing, timeout=60_000)
    return review


def test_review_clusters_and_likely_faces(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    a, b = sorted(groups(window, "cluster"), key=lambda g: -g.count)[:2]
    # Two faces of cluster a become Anna: the rest of a looks like Anna.
    two = select_rows(window, GroupKey(GroupKind.CLUSTER, a.id), [0, 1], qtbot)
    assert window.name_faces(two, "Anna")
    qtbot.waitUntil(lambda: person(window, "Anna") is not None)
    # Three faces of a third cluster become Cleo: the rest of it are likely Cleo.
    c = sorted(groups(window, "cluster"), key=lambda g: -g.count)[2]
    assert window.name_faces(
        select_rows(window, GroupKey(GroupKind.CLUSTER, c.id), [0, 1, 2], qtbot), "Cleo"
    )
    qtbot.waitUntil(lambda: person(window, "Cleo") is not None)
    # Cluster b is named Ben leaving two faces out: those two come up for Ben.
    loose = select_rows(window, GroupKey(GroupKind.CLUSTER, b.id), [0, 1], qtbot)
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, b.id), "Ben", leave_out=loose)
    qtbot.waitUntil(lambda: person(window, "Ben") is not None)

    review = open_review(qtbot, window)
    items = review.suggestions
    assert items and is_cluster_item(items[0]), items
    assert items[0].cluster_id == a.id and items[0].person_name == "Anna"
    assert review.question.text() == f"{items[0].text}: merge?"
    faces = [s for s in items if not is_cluster_item(s)]
    assert {s.face_id for s in faces if s.person_name == "Ben"} >= set(loose)
    # naming Ben set them apart: never "likely" Ben, whatever the distance says
    assert {s.label for s in faces if s.face_id in loose} == {"unsure"}
    assert all(s.label in ("likely", "unsure") for s in faces)

    # No to the cluster is remembered; undo brings the question back; Yes names it.
    review.setFocus()

    def asks_about_a() -> bool:
        return any(is_cluster_item(s) and s.cluster_id == a.id for s in review.suggestions)

    qtbot.keyClick(review, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: not asks_about_a())
    window.act_undo.trigger()
    qtbot.waitUntil(asks_about_a, timeout=20_000)
    review.position = 0
    review.move(0)
    qtbot.keyClick(review, Qt.Key.Key_Y)
    qtbot.waitUntil(lambda: window.sidebar_model.group(GroupKey(GroupKind.CLUSTER, a.id)) is None)
    assert person(window, "Anna").count > 2

    # The face on screen can be named as someone else (an unsure one: likely ones are
    # kept for Accept All Likely below).
    qtbot.waitUntil(lambda: review.current() is not None and not window.refreshing)
    labels = [getattr(s, "label", "") for s in review.suggestions]
    review.position = labels.index("unsure") if "unsure" in labels else 0
    review.move(0)
    shown = review.current()

    def fake_exec(dialog: NameDialog) -> int:
        dialog.edit.setText("Someone New")
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)
    review.other.click()
    qtbot.waitUntil(lambda: person(window, "Someone New") is not None)
    assert window.session.group_faces(
        GroupKey(GroupKind.PERSON, person(window, "Someone New").id)
    ) == [shown.face_id]
    assert window.content.currentWidget() is review  # the review goes on

    # Accept All Likely: one step, one undo.
    qtbot.waitUntil(lambda: not window.refreshing)
    likely = [s for s in review.suggestions if getattr(s, "label", "") == "likely"]
    assert likely and {s.person_name for s in likely} == {"Cleo"}
    counts = {g.name: g.count for g in groups(window, "person")}
    assert review.accept_likely.isEnabled()
    review.accept_likely.click()
    qtbot.waitUntil(
        lambda: not any(getattr(s, "label", "") == "likely" for s in review.suggestions)
    )
    after = {g.name: g.count for g in groups(window, "person")}
    assert sum(after.values()) == sum(counts.values()) + len(likely)
    window.act_undo.trigger()
    qtbot.waitUntil(lambda: {g.name: g.count for g in groups(window, "person")} == counts)
    assert not window.errors, window.errors


@pytest.fixture
def largest_cluster(qtbot, window, scanned_library) -> list[int]:
    """The faces of the scanned library's largest cluster, open and selected in the
    window."""
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    cluster = max(groups(window, "cluster"), key=lambda g: g.count)
    key = GroupKey(GroupKind.CLUSTER, cluster.id)
    window.sidebar.select_key(key)
    qtbot.waitUntil(lambda: window.current_key == key)
    return window.session.group_faces(key)


def test_faces_that_do_not_fit_are_shown_apart_and_left_out(
    qtbot, window, largest_cluster, monkeypatch
):
    from faceapp.engine import naming

    faces = largest_cluster
    odd = faces[-2:]  # the engine's outlier test, pinned to two known faces for the check
    monkeypatch.setattr(naming, "cluster_outliers", lambda lib, cid: list(odd))
    seen = []

    def fake_exec(dialog: NameDialog) -> int:
        seen.append(dialog)
        dialog.edit.setText("Fits")
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)
    window.act_name.trigger()
    qtbot.waitUntil(lambda: person(window, "Fits") is not None)
    assert seen[-1].apart_count == 2
    named = window.session.group_faces(GroupKey(GroupKind.PERSON, person(window, "Fits").id))
    assert set(named) == set(faces) - set(odd)
    assert all(window.group_of_face(f).kind is GroupKind.UNKNOWN for f in odd)
    assert not window.errors, window.errors


def _slow_outlier_check(monkeypatch, odd: list[int]):
    """The engine's check, pinned to ``odd`` and held until ``gate`` opens; records the
    thread it ran on."""
    import threading

    from faceapp.engine import naming

    gate, threads = threading.Event(), []

    def check(lib, cid):
        threads.append(threading.current_thread())
        assert gate.wait(30)
        return list(odd)

    monkeypatch.setattr(naming, "cluster_outliers", check)
    return gate, threads


def test_the_name_dialog_opens_at_once_and_checks_the_group_in_a_worker(
    qtbot, window, largest_cluster, monkeypatch
):
    import threading

    faces = largest_cluster
    gate, threads = _slow_outlier_check(monkeypatch, faces[-1:])
    seen = []

    def fake_exec(dialog: NameDialog) -> int:
        # open while the check still runs: it says so, and nothing is shown apart yet
        texts = [w.text() for w in dialog.apart_box.findChildren(type(dialog.note))]
        seen.append((dialog.checking, dialog.apart_box.isVisibleTo(dialog), texts))
        gate.set()
        qtbot.waitUntil(lambda: not dialog.checking)
        # the dialog grows to show the whole note and the faces (none of it clipped)
        layout = dialog.layout()
        qtbot.waitUntil(lambda: dialog.height() >= layout.totalHeightForWidth(dialog.width()))
        seen.append((dialog.checking, dialog.apart_count))
        dialog.edit.setText("Checked")
        return NameDialog.DialogCode.Accepted

    monkeypatch.setattr(NameDialog, "exec", fake_exec)
    window.act_name.trigger()
    qtbot.waitUntil(lambda: person(window, "Checked") is not None)
    assert seen[0] == (True, True, ["Checking that every face fits this group…"])
    assert seen[1] == (False, 1)
    assert threads and threads[0] is not threading.main_thread()
    named = window.session.group_faces(GroupKey(GroupKind.PERSON, person(window, "Checked").id))
    assert set(named) == set(faces[:-1])
    assert not window.errors, window.errors


def test_naming_before_the_check_answers_waits_for_it(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    a, b = sorted(groups(window, "cluster"), key=lambda g: -g.count)[:2]
    faces_a = window.session.group_faces(GroupKey(GroupKind.CLUSTER, a.id))
    gate, _threads = _slow_outlier_check(monkeypatch, faces_a[:1])
    # typed and accepted at once: nothing is named until the check has answered
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, a.id), "Quick A")
    assert window.apply_name(GroupKey(GroupKind.CLUSTER, b.id), "Quick B")
    qtbot.wait(300)
    assert person(window, "Quick A") is None and person(window, "Quick B") is None
    gate.set()
    qtbot.waitUntil(lambda: person(window, "Quick B") is not None and not window.refreshing)
    assert window.group_of_face(faces_a[0]).kind is GroupKind.UNKNOWN  # to review
    assert person(window, "Quick A").count == len(faces_a) - 1
    # named in the order asked: undo takes B back first
    assert window.act_undo.text().startswith("&Undo Named cluster") and "Quick B" in (
        window.act_undo.text()
    )
    assert not window.errors, window.errors


def test_programmatic_naming_checks_the_group_in_a_worker_too(
    qtbot, window, scanned_library, monkeypatch
):
    """session.name_group and Yes to a cluster suggestion take the window's path: the
    check runs in a worker, never on the GUI thread, and the odd face is left out."""
    import threading

    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    a, b = sorted(groups(window, "cluster"), key=lambda g: -g.count)[:2]
    faces_a = window.session.group_faces(GroupKey(GroupKind.CLUSTER, a.id))
    gate, threads = _slow_outlier_check(monkeypatch, faces_a[-1:])
    pending = window.session.name_group(GroupKey(GroupKind.CLUSTER, a.id), "Programmatic")
    assert pending is not None and person(window, "Programmatic") is None  # not yet
    gate.set()
    qtbot.waitUntil(lambda: person(window, "Programmatic") is not None)
    anna = GroupKey(GroupKind.PERSON, person(window, "Programmatic").id)
    assert set(window.session.group_faces(anna)) == set(faces_a[:-1])
    # Yes to "Cluster b looks like Programmatic", asked without the odd faces known
    from faceapp.engine.review import ClusterReview

    faces_b = window.session.group_faces(GroupKey(GroupKind.CLUSTER, b.id))
    gate_b, threads_b = _slow_outlier_check(monkeypatch, faces_b[-1:])
    gate_b.set()
    question = ClusterReview(b.id, anna.id, "Programmatic", len(faces_b), len(faces_b), 0.9)
    assert window.session.answer_suggestion(question, True) is not None
    qtbot.waitUntil(lambda: set(faces_b[:-1]) <= set(window.session.group_faces(anna)))
    assert faces_b[-1] not in window.session.group_faces(anna)
    assert threads and threads_b and threading.main_thread() not in threads + threads_b
    assert not window.errors, window.errors


def test_a_cluster_of_the_same_id_in_another_library_can_be_named_at_once(
    qtbot, window, scanned_library, monkeypatch, tmp_path
):
    """A naming still waiting for its check in the library closed does not hold back
    the cluster with the same id in the library opened next, nor name anything there."""
    import shutil

    _folder, library = scanned_library
    other = tmp_path / "other.sqlite"
    shutil.copy2(library, other)
    open_and_wait(qtbot, window, library=library)
    a = max(groups(window, "cluster"), key=lambda g: g.count)
    key = GroupKey(GroupKind.CLUSTER, a.id)
    faces = window.session.group_faces(key)
    gate, _threads = _slow_outlier_check(monkeypatch, [])
    assert window.session.name_group(key, "First Library") is not None
    open_and_wait(qtbot, window, library=other)
    assert window.session.name_group(key, "Second Library") is not None
    gate.set()
    qtbot.waitUntil(lambda: person(window, "Second Library") is not None and not window.refreshing)
    assert set(
        window.session.group_faces(GroupKey(GroupKind.PERSON, person(window, "Second Library").id))
    ) == set(faces)
    assert person(window, "First Library") is None  # its library is no longer open
    assert not window.errors, window.errors
