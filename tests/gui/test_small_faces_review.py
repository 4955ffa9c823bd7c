"""Review through the real window measures a small face at its own resolution, in a
worker, and shows the measured suggestion."""

from __future__ import annotations

import threading

import pytest
from guihelpers import groups, open_and_wait, person

from faceapp.engine import small_match
from faceapp.gui.groups import GroupKey, GroupKind

pytestmark = pytest.mark.slow


def test_review_measures_a_small_face_in_a_worker(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    biggest = max(groups(window, "cluster"), key=lambda g: g.count)
    key = GroupKey(GroupKind.CLUSTER, biggest.id)
    faces = window.session.group_faces(key)
    small, rest = faces[0], faces[1:]
    assert window.apply_name(key, "Anna", leave_out=[small])
    qtbot.waitUntil(lambda: person(window, "Anna") is not None)
    lib = window.session.lib
    with lib.transaction() as c:  # the face left out is seen as a 14 px box
        c.execute("UPDATE faces SET x2 = x1 + 14, y2 = y1 + 14 WHERE id = ?", (small,))
    threads: list[str] = []
    update = small_match.update
    monkeypatch.setattr(
        small_match,
        "update",
        lambda *a: threads.append(threading.current_thread().name) or update(*a),
    )
    window.act_review.trigger()
    qtbot.waitUntil(
        lambda: (
            lib.conn.execute(
                "SELECT COUNT(*) FROM small_matches WHERE face_id = ?", (small,)
            ).fetchone()[0]
            > 0
        ),
        timeout=120_000,
    )
    assert threads and threading.main_thread().name not in threads
    measured = lib.conn.execute(
        "SELECT MIN(distance) FROM small_matches WHERE face_id = ?", (small,)
    ).fetchone()[0]
    # Review is read again with the measurement: the face is asked about as Anna's
    qtbot.waitUntil(
        lambda: any(
            s.face_id == small and abs(s.distance - round(measured, 4)) < 1e-6
            for s in window.review_view.suggestions
            if getattr(s, "face_id", None) is not None
        ),
        timeout=60_000,
    )
    shown = next(s for s in window.review_view.suggestions if getattr(s, "face_id", 0) == small)
    assert shown.person_name == "Anna" and set(rest) <= set(
        window.session.group_faces(GroupKey(GroupKind.PERSON, person(window, "Anna").id))
    )
