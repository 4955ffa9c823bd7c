"""How a distributed scan gives up a stuck share and sends its photos elsewhere (the
bookkeeping alone, without Ray; test_distributed.py runs it on a real cluster)."""

from __future__ import annotations

import time

from faceapp.engine.distributed_shares import Shares
from faceapp.engine.distributed_work import ShardDone, Where

A = Where("a" * 16, "host-a (10.0.0.1, node aaaaaaaa)")
B = Where("b" * 16, "host-b (10.0.0.2, node bbbbbbbb)")


class Cluster:
    """Records the tasks started and the progress their workers report."""

    def __init__(self) -> None:
        self.started: list[tuple[list[str], str | None]] = []
        self.reports: dict[int, tuple[Where, int]] = {}
        self.cancelled: list[int] = []

    def submit(self, share, key: int, node: str | None) -> int:
        self.started.append(([rel for rel, _ in share.files], node))
        return key

    def tracker(self, keys: list[int]) -> dict[int, tuple[Where, int]]:
        return {k: self.reports[k] for k in keys if k in self.reports}


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
