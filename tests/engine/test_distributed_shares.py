"""How a distributed scan gives up a stuck share and sends its photos elsewhere (the
bookkeeping alone, without Ray; test_distributed.py runs it on a real cluster)."""

from __future__ import annotations

import os
import time

from faceapp.engine.distributed_shares import Shares
from faceapp.engine.distributed_work import ShardDone, Where
from faceapp.engine.scan_decode import DecodeStream

A = Where("a" * 16, "host-a (10.0.0.1, node aaaaaaaa)")
B = Where("b" * 16, "host-b (10.0.0.2, node bbbbbbbb)")


class Cluster:
    """Records the tasks started and the progress their workers report."""

    def __init__(self) -> None:
        self.started: list[tuple[list[str], str | None]] = []
        self.reports: dict[int, tuple[Where, int]] = {}
        self.attempts: dict[int, str] = {}  # Ray's try of each task, "1" unless set
        self.cancelled: list[int] = []

    def submit(self, share, key: int, node: str | None) -> int:
        self.started.append(([rel for rel, _ in share.files], node))
        return key

    def tracker(self, keys: list[int]) -> dict[int, tuple[Where, int, str]]:
        return {k: (*self.reports[k], self.attempts.get(k, "1")) for k in keys if k in self.reports}


def _files(n: int) -> list[tuple[str, str]]:
    return [(f"p{i}.jpg", f"/photos/p{i}.jpg") for i in range(n)]


def _stall(shares: Shares, cluster: Cluster, key: int, where: Where, done: int) -> list:
    """The task ``key`` reports ``done`` photos, then makes no progress past its limit."""
    cluster.reports[key] = (where, done)
    alive = [A.node, B.node]
    assert shares.overdue(alive, cluster.cancelled.append, every=0) == []
    time.sleep(shares.floor * 2)
    return shares.overdue(alive, cluster.cancelled.append, every=0)


def test_the_batch_a_share_hangs_on_goes_again_photo_by_photo_on_another_worker():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=0.05, retries=1)
    shares.add(_files(10))
    shares.start(slots=2, alive=[A.node, B.node])
    assert _stall(shares, cluster, 0, A, 4) == []
    assert cluster.cancelled == [0]
    shares.start(slots=8, alive=[A.node, B.node])
    started = cluster.started[1:]
    # the four photos of the batch it was on, alone and away from A; the rest as before
    alone = [([f"p{i}.jpg"], B.node) for i in range(4, 8)]
    rest = ([f"p{i}.jpg" for i in (0, 1, 2, 3, 8, 9)], None)
    assert sorted(started) == sorted([*alone, rest])
    assert shares.sent_again == 4


def test_a_photo_that_hangs_everywhere_is_given_up_with_the_workers_named():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=0.05, retries=1)
    shares.add(_files(1))
    shares.start(slots=2, alive=[A.node, B.node])
    assert _stall(shares, cluster, 0, A, 0) == []
    shares.start(slots=2, alive=[A.node, B.node])
    (given,) = _stall(shares, cluster, 1, B, 0)
    assert given.files == _files(1) and given.store
    assert given.reason == f"took longer than 0 s on the Ray workers {A.name}, {B.name}; skipped"
    assert not shares


def test_progress_a_dead_worker_or_a_queued_share_is_never_counted_as_stuck():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=0.05, retries=1)
    shares.add(_files(4))
    shares.add(_files(4))
    shares.start(slots=2, alive=[A.node, B.node])
    cluster.reports[0] = (A, 0)  # task 1 never reports: it waits for a worker
    time.sleep(0.1)
    shares.overdue([A.node, B.node], cluster.cancelled.append, every=0)
    for done in (1, 2):  # it moves on
        time.sleep(0.03)
        cluster.reports[0] = (A, done)
        assert shares.overdue([A.node, B.node], cluster.cancelled.append, every=0) == []
    time.sleep(0.1)
    assert shares.overdue([B.node], cluster.cancelled.append, every=0) == []  # A died: Ray's
    assert cluster.cancelled == []
    assert shares.finished(0, ShardDone(A, [], [], 4.0)).key == 0
    assert shares.limit(shares.running[1]) == 600.0  # still building its model: setup limit


def test_a_read_that_hangs_on_a_worker_is_reported_apart_and_tried_on_another_first(tmp_path):
    # the worker's decode stream gives a blocked read up after its limit and lists it
    stuck = tmp_path / "p1.jpg"
    os.mkfifo(stuck)  # opening it blocks, as a read from a mount that stopped answering
    stream = DecodeStream([("p1.jpg", stuck)], (), limit=0.2)
    item = stream.next()
    stream.close()
    assert stream.timed_out == ["p1.jpg"]
    assert item.error == "took longer than 0 s to read and decode; skipped (damaged file?)"
    # the head does not store it after that one worker: it goes to another alone
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=0.05, retries=1)
    shares.add(_files(3))
    shares.start(slots=2, alive=[A.node, B.node])
    run = shares.finished(0, ShardDone(A, [], [], 1.0, ["p1.jpg"]))
    assert shares.decode_timed_out(run, ShardDone(A, [], [], 1.0, ["p1.jpg"]), 120) == []
    shares.start(slots=2, alive=[A.node, B.node])
    assert cluster.started[1:] == [(["p1.jpg"], B.node)]
    # timed out there too: given up, to be stored, with both workers named
    done = ShardDone(B, [], [], 1.0, ["p1.jpg"])
    (given,) = shares.decode_timed_out(shares.finished(1, done), done, 120)
    assert given.store and given.files == [("p1.jpg", "/photos/p1.jpg")]
    assert given.reason == (
        f"took longer than 120 s to read and decode on the Ray workers {A.name}, {B.name};"
        " skipped (damaged file?)"
    )
    assert not shares


def test_a_share_that_hangs_after_its_last_batch_goes_elsewhere_then_is_reported():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=0.05, retries=1)
    shares.add(_files(4))
    shares.start(slots=2, alive=[A.node, B.node])
    assert _stall(shares, cluster, 0, A, 4) == []  # every photo done, no answer
    shares.start(slots=2, alive=[A.node, B.node])
    assert cluster.started[1:] == [([f"p{i}.jpg" for i in range(4)], B.node)]
    (given,) = _stall(shares, cluster, 1, B, 4)  # not sent again forever
    assert not given.store and given.files == _files(4)
    assert given.reason == (
        f"the Ray workers {A.name}, {B.name} took longer than 0 s to hand the results back"
    )
    assert not shares


def test_new_shares_keep_clear_of_a_worker_that_hung_on_no_photo():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=0.05, retries=1)
    shares.add(_files(4))
    shares.start(slots=1, alive=[A.node, B.node])
    assert _stall(shares, cluster, 0, A, 4) == []  # A hung after its last batch
    shares.add(_files(2))
    shares.start(slots=2, alive=[A.node, B.node])
    assert [node for _, node in cluster.started[1:]] == [B.node, B.node]
    shares.add(_files(1))  # when only A is left, it is used
    shares.start(slots=3, alive=[A.node])
    assert cluster.started[-1] == (["p0.jpg"], None)


def test_a_photo_that_crashes_its_workers_is_found_and_the_rest_of_its_share_go_on():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=60, retries=1)
    shares.add(_files(3))
    shares.start(slots=2, alive=[A.node, B.node])
    cluster.reports[0] = (A, 0)
    # its worker process died on every Ray retry (a decoder crash, an out-of-memory kill)
    assert shares.crashed(0, "WorkerCrashedError") == []
    shares.start(slots=4, alive=[A.node, B.node])
    assert sorted(cluster.started[1:]) == [([f"p{i}.jpg"], B.node) for i in range(3)]
    assert shares.sent_again == 3
    for key in (1, 3):  # p0 and p2 are fine alone
        shares.finished(key, ShardDone(B, [], [], 1.0))
    cluster.reports[2] = (B, 0)
    (given,) = shares.crashed(2, "OutOfMemoryError")  # p1 crashes there too
    assert given.store and given.files == [("p1.jpg", "/photos/p1.jpg")]
    assert given.reason == (
        f"the Ray workers {A.name}, {B.name} crashed reading it (OutOfMemoryError); skipped"
    )
    assert not shares


def test_a_share_that_finished_meanwhile_is_never_cancelled_as_stuck():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=0.05, retries=1)
    shares.add(_files(4))
    shares.start(slots=2, alive=[A.node, B.node])
    cluster.reports[0] = (A, 0)
    alive = [A.node, B.node]
    assert shares.overdue(alive, cluster.cancelled.append, every=0) == []
    time.sleep(0.1)  # past its limit without a report, but its result is in
    assert shares.overdue(alive, cluster.cancelled.append, lambda ref: True, every=0) == []
    assert cluster.cancelled == [] and cluster.started == [
        (["p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"], None)
    ]
    assert shares.finished(0, ShardDone(A, [], [], 1.0)).key == 0 and not shares


def test_a_ray_retry_that_starts_over_is_timed_from_its_own_start():
    cluster = Cluster()
    shares = Shares(cluster.submit, cluster.tracker, batch=4, floor=1.0, retries=1)
    shares.add(_files(8))
    shares.start(slots=1, alive=[A.node, B.node])
    alive = [A.node, B.node]
    cluster.reports[0] = (A, 4)
    assert shares.overdue(alive, cluster.cancelled.append, every=0) == []
    time.sleep(0.8)  # the try's worker process dies; Ray's retry gets as far on A
    cluster.attempts[0] = "2"
    assert shares.overdue(alive, cluster.cancelled.append, every=0) == []
    time.sleep(0.4)  # past the first try's limit, within the retry's own
    assert shares.overdue(alive, cluster.cancelled.append, every=0) == []
    assert cluster.cancelled == []
