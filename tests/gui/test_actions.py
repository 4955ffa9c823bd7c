"""Main window actions: declared once, one action per shortcut, enabled by the group's kind.

Also the window-level defects that need no scanned library: the redo keys,
the title at the minimum window size, the keyboard focus ring, the start-up
message for a missing libxcb-cursor0 and a second connection's changes.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QKeySequence

from faceapp.gui import actions
from faceapp.gui.groups import GroupKey, GroupKind


def test_each_shortcut_triggers_exactly_one_action(window):
    by_scope: dict[tuple[int, str], list[str]] = defaultdict(list)
    for action in window.findChildren(QAction):
        scope = action.shortcutContext().value
        owners = tuple(sorted(id(w) for w in action.associatedObjects() if w is not window))
        for seq in action.shortcuts():
            if action.shortcutContext() == Qt.ShortcutContext.WindowShortcut:
                owners = ()
            by_scope[(scope, owners, seq.toString())].append(action.text())
    clashes = {k: v for k, v in by_scope.items() if len(v) > 1}
    assert not clashes, clashes


def test_redo_answers_ctrl_y_and_ctrl_shift_z(qtbot, window, qtlog):
    from types import SimpleNamespace

    done: list[str] = []
    window.act_undo.triggered.connect(lambda: done.append("undo"))
    window.act_redo.triggered.connect(lambda: done.append("redo"))
    actions.show_undo_status(window, SimpleNamespace(undo="Named Anna", redo="Renamed Ben"))
    window.activateWindow()
    window.setFocus()
    for key in ("Ctrl+Z", "Ctrl+Y", "Ctrl+Shift+Z"):
        seq = QKeySequence(key)[0]
        qtbot.keyClick(window, seq.key(), seq.keyboardModifiers())
    assert done == ["undo", "redo", "redo"]
    assert not [r for r in qtlog.records if "Ambiguous shortcut" in r.message]


def test_actions_follow_what_the_group_kind_can_do(window):
    acts = window.actions_by_name
    unknown = actions.Context(has_lib=True, kind=GroupKind.UNKNOWN, faces_selected=True)
    actions.update_actions(acts, unknown)
    assert acts["move"].isEnabled()  # loose faces can be named, with F2 too
    assert acts["name"].isEnabled() and not acts["merge"].isEnabled()
    assert not acts["reject"].isEnabled() and not acts["hide"].isEnabled()
    actions.update_actions(acts, actions.Context(has_lib=True, kind=GroupKind.UNKNOWN))
    assert not acts["name"].isEnabled()  # Unknown has no name of its own
    cluster = actions.Context(has_lib=True, kind=GroupKind.CLUSTER)
    actions.update_actions(acts, cluster)
    assert acts["name"].isEnabled() and acts["name"].text() == "&Name…"
    assert acts["merge"].isEnabled() and not acts["hide"].isEnabled()
    assert not acts["move"].isEnabled()  # nothing selected
    person = actions.Context(has_lib=True, kind=GroupKind.PERSON, faces_selected=True)
    actions.update_actions(acts, person)
    assert acts["name"].text() == "Re&name…" and acts["hide"].isEnabled()
    assert acts["reject"].text() == "&Not This Person"
    assert not acts["reject_box"].isEnabled()
    actions.update_actions(acts, actions.Context(has_lib=True, box_selected=True))
    assert acts["reject_box"].isEnabled()


def test_group_keys_carry_their_kind():
    key = GroupKey.from_list(["cluster", "7"])
    assert key == GroupKey(GroupKind.CLUSTER, 7) and key.kind.can_merge
    assert key.kind.title(7) == "Cluster 7" and key.as_list() == ["cluster", 7]
    assert GroupKind("person").can_hide and not GroupKind("unknown").can_name


def test_title_is_elided_not_cut_at_the_minimum_size(qtbot, window):
    window.resize(window.minimumSize())
    window.pages.setCurrentIndex(1)
    long_title = "Maximilian Alexander Fitzgerald-Worthington the Third of Somewhere"
    window.grid_page.set_header(long_title, "Person  ·  12 faces")
    qtbot.waitUntil(lambda: window.grid_page.title.width() > 0)
    label = window.grid_page.title
    shown = label.shown_text()
    assert shown.endswith("…") and long_title.startswith(shown[:-1])
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    assert label.toolTip() == long_title
    assert window.width() == window.minimumWidth()


def _pixels_of(image, colour: QColor) -> int:
    want = colour.rgb() & 0xFFFFFF
    return sum(
        1
        for y in range(0, image.height(), 2)
        for x in range(0, image.width(), 2)
        if abs(((image.pixel(x, y) & 0xFFFFFF) >> 16) - (want >> 16)) < 12
        and abs(((image.pixel(x, y) >> 8) & 0xFF) - ((want >> 8) & 0xFF)) < 12
        and abs((image.pixel(x, y) & 0xFF) - (want & 0xFF)) < 12
    )


def test_keyboard_focus_is_visible_in_the_sidebar(qtbot, window):
    from faceapp.engine.people import Group
    from faceapp.gui.delegates import FOCUS

    window.pages.setCurrentIndex(1)
    window.sidebar_model.set_groups([Group("cluster", 3, None, 5, False, None)])
    window.sidebar.select_key(GroupKey(GroupKind.CLUSTER, 3))
    window.grid.setFocus()
    qtbot.waitUntil(lambda: window.grid.hasFocus())
    without = _pixels_of(window.sidebar.viewport().grab().toImage(), FOCUS)
    window.sidebar.setFocus()
    qtbot.waitUntil(lambda: window.sidebar.hasFocus())
    with_focus = _pixels_of(window.sidebar.viewport().grab().toImage(), FOCUS)
    assert with_focus > without + 20


def test_missing_xcb_cursor_library_is_said_at_start(monkeypatch, capsys):
    from faceapp.gui import app

    monkeypatch.setattr(app.sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(app.ctypes.util, "find_library", lambda name: None)
    assert app.main(["faceapp-gui"]) == 1
    err = capsys.readouterr().err
    assert "libxcb-cursor0" in err and "apt install" in err
    monkeypatch.setattr(app.ctypes.util, "find_library", lambda name: f"lib{name}.so.0")
    assert app.missing_system_library() is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(app.ctypes.util, "find_library", lambda name: None)
    assert app.missing_system_library() is None


def test_library_watch_sees_a_commit_from_another_connection(qtbot, tmp_path):
    from faceapp.engine.library import Library, open_library
    from faceapp.gui.library_watch import LibraryWatch

    (tmp_path / "photos").mkdir()
    lib = open_library(tmp_path / "photos", tmp_path / "lib.sqlite")
    watch = LibraryWatch(interval_ms=50)
    watch.watch(lib)
    assert not watch.check()
    other = Library(tmp_path / "lib.sqlite")
    with other.transaction() as c:
        c.execute("PRAGMA user_version = 7")
    with qtbot.waitSignal(watch.changedElsewhere, timeout=2000):
        pass
    assert not watch.check()  # seen once
    other.close()
    lib.close()
    watch.watch(None)


def test_every_declared_action_calls_a_window_method(window):
    for spec in actions.ACTIONS:
        assert callable(getattr(window, spec.slot)), spec.slot
        assert getattr(window, f"act_{spec.name}") is window.actions_by_name[spec.name]


def test_search_field_filters_people_by_name(qtbot, window):
    from faceapp.engine.people import Group

    window.pages.setCurrentIndex(1)
    window.sidebar_model.set_groups(
        [
            Group("person", 1, "Anna Berg", 4, False, None),
            Group("person", 2, "Ben Okafor", 2, False, None),
            Group("person", 3, "Hanna Lee", 1, True, None),
            Group("cluster", 7, None, 9, False, None),
            Group("unknown", 0, None, 3, False, None),
        ]
    )

    def titles() -> list[str]:
        model = window.sidebar_model
        return [model.index(r).data() for r in range(model.rowCount())]

    assert "Cluster 7" in titles()
    qtbot.keyClicks(window.sidebar_panel.search, "ann")
    shown = titles()
    assert "Anna Berg" in shown and "Hanna Lee" in shown
    assert "Ben Okafor" not in shown and "Cluster 7" not in shown
    window.sidebar_panel.search.clear()
    assert "Ben Okafor" in titles() and "Cluster 7" in titles()


def test_verify_shows_a_distance_near_the_threshold_as_unsure(qtbot, window):
    from types import SimpleNamespace

    dialog = window.show_verify()
    import numpy as np

    face = SimpleNamespace(crop=np.zeros((8, 8, 3), np.uint8))
    dialog.panes[0].faces = dialog.panes[1].faces = [face]
    dialog.panes[0].chosen = dialog.panes[1].chosen = 0
    threshold = 1.2
    cases = {0.3: "Same person", 1.19: "Probably the same person, not sure"}
    cases |= {0.8: "Probably the same person, not sure", 2.0: "Different people"}
    for distance, text in cases.items():
        judge = SimpleNamespace(threshold=threshold, threshold_source="test")
        dialog._analyzer = judge
        with pytest.MonkeyPatch.context() as mp:
            from faceapp.engine import verify as engine_verify

            mp.setattr(
                engine_verify,
                "compare",
                lambda a, b, j, d=distance: engine_verify.Verdict(
                    d < j.threshold, d, j.threshold, "test"
                ),
            )
            dialog._compare()
        assert dialog.verdict_label.text() == text, distance
        assert dialog.bar.sure == (text in ("Same person", "Different people"))
    assert dialog.verdict_label.objectName() == "verdictDifferent"
    dialog.close()


def test_keyboard_help_lists_the_declared_shortcuts(window):
    from faceapp.gui.dialogs.help import shortcuts_html

    html = shortcuts_html()
    for keys in ("Ctrl+Z / Ctrl+Y", "F2", "Ctrl+M", "Ctrl+Shift+A", "Ctrl+E"):
        assert keys in html, keys


def test_the_shortcuts_help_lists_keyboard_keys_only():
    """On X11 the standard bindings add media keys: the help read "Ctrl+O / Open",
    "Ctrl+W / Close", "Ctrl++ / Zoom In". It shows the keys a keyboard has."""
    media = [QKeySequence(Qt.Key.Key_Open), QKeySequence(Qt.Key.Key_ZoomIn)]
    assert actions.keys_text([QKeySequence("Ctrl+O"), *media]) == "Ctrl+O"
    kept = [QKeySequence("Del"), QKeySequence("Ctrl+D"), QKeySequence("Left"), QKeySequence("F5")]
    assert actions.keys_text(kept) == "Del / Ctrl+D / Left / F5"
    rows = {what: keys for keys, what in actions.shortcut_rows()}
    assert rows["Open Photo Folder"] == "Ctrl+O"
