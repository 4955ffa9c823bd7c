"""Undo belongs to the engine: the GUI shows the library's op log, shared by every process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from guihelpers import groups, open_and_wait, person

from faceapp.gui.mime import GroupKey

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
