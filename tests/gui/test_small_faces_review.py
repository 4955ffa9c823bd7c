"""Review through the real window measures a small face at its own resolution, in a
worker, and shows the measured suggestion."""

from __future__ import annotations

import threading

import pytest
from guihelpers import groups, open_and_wait, person

from faceapp.engine import small_match
from faceapp.gui.groups import GroupKey, GroupKind

pytestmark = pytest.mark.slow


def _small_face_to_measure(qtbot, window) -> tuple[int, list[int]]:
    """The biggest cluster named Anna without its first face, which is made a 14 px box."""
    biggest = max(groups(window, "cluster"), key=lambda g: g.count)
    key = GroupKey(GroupKind.CLUSTER, biggest.id)
    faces = window.session.group_faces(key)
    small, rest = faces[0], faces[1:]
    assert window.apply_name(key, "Anna", leave_out=[small])
    qtbot.waitUntil(lambda: person(window, "Anna") is not None)
    lib = window.session.lib
    with lib.transaction() as c:  # the face left out is seen as a 14 px box
        c.execute("UPDATE faces SET x2 = x1 + 14, y2 = y1 + 14 WHERE id = ?", (small,))
    return small, rest


def test_review_measures_a_small_face_in_a_worker(qtbot, window, scanned_library, monkeypatch):
    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    small, rest = _small_face_to_measure(qtbot, window)
    lib = window.session.lib
    threads: list[str] = []
    update = small_match.update
    monkeypatch.setattr(
        small_match,
        "update",
        lambda *a, **k: threads.append(threading.current_thread().name) or update(*a, **k),
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


def test_a_scan_or_closing_the_library_cancels_the_measuring(
    qtbot, window, scanned_library, monkeypatch
):
    """The measuring is cancelled when a scan starts (one user of the network at a time)
    and when the library closes; it never runs while a scan does."""
    import time

    _folder, library = scanned_library
    open_and_wait(qtbot, window, library=library)
    _small_face_to_measure(qtbot, window)
    runs: list[list] = []

    def update(lib, embed, model_id, *, todo=None, cancel=None, progress=None):
        run = ["started"]
        runs.append(run)
        deadline = time.monotonic() + 30
        while not cancel() and time.monotonic() < deadline:
            time.sleep(0.01)
        run.append(cancel())
        return 0

    monkeypatch.setattr(small_match, "update", update)
    session = window.session
    for stop in (session.start_scan, lambda: session.close_library(quiet=True)):
        window.act_review.trigger()
        qtbot.waitUntil(lambda: bool(runs) and len(runs[-1]) == 1, timeout=60_000)
        run = runs[-1]
        assert session.measuring
        stop()
        assert not session.measuring
        qtbot.waitUntil(lambda run=run: len(run) == 2, timeout=10_000)
        assert run[1] is True  # cancelled, not timed out
        qtbot.waitUntil(lambda: not session.busy, timeout=120_000)
    assert not window.errors, window.errors
