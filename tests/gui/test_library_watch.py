"""One poller sees what other processes do: their operations and their undo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guihelpers import show_library, synthetic_album

from faceapp.engine import people
from faceapp.gui.groups import GroupKey, GroupKind

REPO = Path(__file__).resolve().parents[2]


def faceapp_cli(*args: object) -> str:
    """``faceapp ...`` in another process, on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "faceapp", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_another_processs_change_and_undo_are_seen_by_one_cheap_poller(qtbot, window, tmp_path):
    album = synthetic_album(tmp_path)
    anna = people.create_person(album.lib, "Anna", album.faces_of(0)[:3]).person_id
    album.lib.close()
    path = album.lib.path
    session = window.session
    session.library_watch.set_interval(50)
    show_library(qtbot, window, path)
    key = GroupKey(GroupKind.PERSON, anna)
    qtbot.waitUntil(lambda: window.sidebar_model.group(key) is not None)
    assert window.act_undo.text() == "&Undo New person Anna (3 faces)"

    # idle: each tick is one cheap query, nothing more is read
    statements: list[str] = []
    session.lib.conn.set_trace_callback(statements.append)
    qtbot.wait(400)
    session.lib.conn.set_trace_callback(None)
    assert statements and set(statements) == {"PRAGMA data_version"}

    # another process confirms a face: the groups and the Undo menu follow
    face = album.faces_of(0)[3]
    assert faceapp_cli("move", face, "--to", "Anna", "--library", path) == "Moved 1 face to Anna"
    qtbot.waitUntil(lambda: window.act_undo.text() == "&Undo Moved 1 face to Anna", timeout=5000)
    qtbot.waitUntil(lambda: window.sidebar_model.group(key).count == 4, timeout=5000)
    # ... and undoes it: both seen again
    assert faceapp_cli("undo", "--library", path) == "Undid: Moved 1 face to Anna"
    qtbot.waitUntil(lambda: window.act_redo.text() == "&Redo Moved 1 face to Anna", timeout=5000)
    assert window.act_undo.text() == "&Undo New person Anna (3 faces)"
    qtbot.waitUntil(lambda: window.sidebar_model.group(key).count == 3, timeout=5000)
    assert not window.errors, window.errors
