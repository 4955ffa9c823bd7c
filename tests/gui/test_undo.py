"""Undo belongs to the engine: the GUI shows the library's op log, shared by every process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from guihelpers import groups, open_and_wait, person

from faceapp.gui.groups import GroupKey

REPO = Path(__file__).resolve().parents[2]


def faceapp_cli(*args: str) -> subprocess.CompletedProcess:
    """``faceapp ...`` in a second process, on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "faceapp", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow
def test_gui_undo_after_another_process_undid_undoes_and_names_the_right_operation(
    qtbot, window, scanned_library
):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    first, second = sorted(groups(window, "cluster"), key=lambda g: -g.count)[:2]
    assert window.apply_name(GroupKey("cluster", first.id), "Anna")
    assert window.apply_name(GroupKey("cluster", second.id), "Ben")
    qtbot.waitUntil(lambda: person(window, "Ben") is not None)
    anna, ben = person(window, "Anna"), person(window, "Ben")
    # the scenario: rename Anna -> Anne and Ben -> Benny in the GUI ...
    assert window.apply_name(GroupKey("person", anna.id), "Anne")
    assert window.apply_name(GroupKey("person", ben.id), "Benny")
    qtbot.waitUntil(lambda: person(window, "Benny") is not None)
    assert window.act_undo.text() == "&Undo Renamed Ben to Benny"
    # ... `faceapp undo` in another process reverts the latest: Ben's rename ...
    done = faceapp_cli("undo", "--library", str(library))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Undid: Renamed Ben to Benny"
    # ... the GUI reads that from the library: the menu now offers Anna's rename
    qtbot.waitUntil(lambda: window.act_undo.text() == "&Undo Renamed Anna to Anne", timeout=10_000)
    qtbot.waitUntil(lambda: person(window, "Ben") is not None, timeout=10_000)
    assert window.act_redo.text() == "&Redo Renamed Ben to Benny"
    # ... and Ctrl+Z undoes Anna's rename and says so
    window.act_undo.trigger()
    assert window.statusBar().currentMessage() == "Undid: Renamed Anna to Anne"
    qtbot.waitUntil(lambda: person(window, "Anna") is not None)
    assert person(window, "Anne") is None and person(window, "Benny") is None
    assert person(window, "Ben").id == ben.id and person(window, "Anna").id == anna.id
    assert window.act_redo.text() == "&Redo Renamed Anna to Anne"
    assert not window.errors, window.errors


@pytest.mark.slow
def test_an_operation_redraws_only_the_groups_it_changed(
    qtbot, window, scanned_library, monkeypatch
):
    from faceapp.engine import album

    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    shown, other = sorted(groups(window, "cluster"), key=lambda g: -g.count)[:2]
    assert window.apply_name(GroupKey("cluster", other.id), "Anna")
    qtbot.waitUntil(lambda: person(window, "Anna") is not None and not window.refreshing)
    anna = person(window, "Anna")
    window.sidebar.select_key(GroupKey("cluster", shown.id))
    qtbot.waitUntil(lambda: window.grid_model.group_key == GroupKey("cluster", shown.id))
    qtbot.waitUntil(lambda: not window.refreshing)
    read = []
    real = album.group_faces
    monkeypatch.setattr(album, "group_faces", lambda *a: read.append(a[1:]) or real(*a))
    # renaming Anna does not touch the cluster on screen: its faces are not re-read
    changes = window.session.name_group(GroupKey("person", anna.id), "Anne")
    assert changes.people == {anna.id} and not changes.touches("cluster", shown.id)
    qtbot.waitUntil(lambda: person(window, "Anne") is not None and not window.refreshing)
    assert read == []
    # moving a face of the shown cluster to Anne touches it: re-read once
    face = window.grid_model.face_at(0)
    assert window.request_move([face], GroupKey("person", anna.id))
    qtbot.waitUntil(lambda: face not in window.grid_model.face_ids() and not window.refreshing)
    assert read == [("cluster", shown.id)]
