"""Background jobs: results, errors, throttled progress and cancellation reach the GUI thread."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QThread

from faceapp.gui import workers


def test_job_result_arrives_on_gui_thread(qtbot):
    seen = {}

    def work(job):
        seen["worker"] = threading.get_ident()
        return 42

    job = workers.Job(work)
    with qtbot.waitSignal(job.signals.finished, timeout=5000) as blocker:
        workers.start(job)
    assert blocker.args == [42]
    assert seen["worker"] != threading.get_ident()
    assert job.finished_ok is True


def test_job_failure_carries_exception(qtbot):
    def work(job):
        raise ValueError("bad photo")

    job = workers.Job(work)
    with qtbot.waitSignal(job.signals.failed, timeout=5000) as blocker:
        workers.start(job)
    exc = blocker.args[0]
    assert isinstance(exc, ValueError) and "bad photo" in str(exc)
    assert "Traceback" in exc.gui_traceback


def test_progress_is_throttled_but_last_value_kept(qtbot):
    received = []
    threads = set()

    def work(job):
        for i in range(2000):
            job.report(i)
        return "ok"

    job = workers.Job(work, progress_interval=0.05)

    def on_progress(value):
        received.append(value)
        threads.add(QThread.currentThread())

    job.signals.progress.connect(on_progress)
    with qtbot.waitSignal(job.signals.done, timeout=5000):
        workers.start(job)
    assert received[-1] == 1999
    assert len(received) < 100
    assert threads == {QThread.currentThread()}


def test_cancel_is_seen_by_engine_callback(qtbot):
    started = threading.Event()

    def work(job):
        started.set()
        t0 = time.monotonic()
        while not job.is_cancelled():
            if time.monotonic() - t0 > 10:
                return "not cancelled"
            time.sleep(0.01)
        return "cancelled"

    job = workers.Job(work)
    workers.start(job)
    assert started.wait(5)
    with qtbot.waitSignal(job.signals.finished, timeout=5000) as blocker:
        job.cancel()
    assert blocker.args == ["cancelled"]


def test_the_grouping_status_line_counts_in_words() -> None:
    from faceapp.engine.cluster import ClusterSummary
    from faceapp.engine.cluster_place import PlaceSummary
    from faceapp.gui.jobs import grouped_message

    regrouped = ClusterSummary(clusters=1, unknown=9, people=5, seconds=0.1)
    assert grouped_message(regrouped) == "Grouped faces: 1 cluster, 9 unsorted faces."
    placed = PlaceSummary(faces=1, placed=0, suggested=1, unknown=0, seconds=0.1)
    assert grouped_message(placed) == (
        "Placed 1 new face: 0 in groups, 1 suggested for named people, 0 unsorted."
    )
