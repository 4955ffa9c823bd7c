"""The shares of a distributed scan: sent to the workers, timed, given up, sent again.

Ray retries a task whose worker died, but not one whose worker hangs (a read from a
mount that stopped answering, a stuck driver). Each running share reports its
progress to a :class:`distributed_work.Tracker`; a share that makes none for longer
than its limit is cancelled (its worker process killed). The photos of the batch it
was stuck on go again one by one, away from that worker, so the stuck photo is
found and the others are stored; the rest of the share goes again as it was. A
photo given up once more after :data:`RETRIES` retries is reported with the reason. A photo a worker
cannot open while this machine can (that worker lacks the mount), and a photo a
worker gave up after its own time limit per file (a read that hangs), go elsewhere
the same way. A worker that hung on no photo (building its model, or after its
last batch) gets no new share while other workers are alive. A share whose worker
process died on every Ray retry (a decoder crash, an out-of-memory kill) goes again
photo by photo, so the photo that kills workers is found.

The limit per batch is :data:`FACTOR` times the measured seconds per photo of the
workers, never under the floor (:data:`TIME_FLOOR`, larger than a worker's own
per-file decode limit, so that a slow file costs that file there, not a worker).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from faceapp.engine.distributed_work import ShardDone, Where
from faceapp.engine.scan_decode import TIME_LIMIT_PREFIX

RETRIES = 3  # a photo given up on (stuck, unreadable on its worker) is sent again this often
TIME_FLOOR = 300.0  # seconds a share may go without finishing a batch, at least
FACTOR = 10.0  # ... and at least this many times the measured time of a batch
SETUP_LIMIT = 600.0  # seconds a worker may take to build its model


@dataclass
class Share:
    """Files that go to one task, and the workers they are kept away from."""

    files: list[tuple[str, str]]  # (path relative to the folder, absolute path)
    tries: int = 0  # times given up on
    avoid: tuple[Where, ...] = ()  # the workers it hung on or could not read it


@dataclass
class Running:
    share: Share
    key: int  # the tracker's name for it
    where: Where | None = None  # None until the task reports in (it may be queued)
    done: int = -1  # photos finished; -1 while the worker builds its model
    attempt: str = ""  # which of Ray's tries reported (a retry starts over)
    since: float = field(default_factory=time.monotonic)  # when it last made progress


@dataclass
class GivenUp:
    """Photos no worker finished: report them (``store``: as unreadable in the library)."""

    files: list[tuple[str, str]]
    reason: str
    store: bool


class Shares:
    """The shares waiting and running on the cluster.

    ``submit(share, key, node)`` starts a task (on ``node``, or anywhere when None) and
    returns its reference; ``tracker(keys)`` returns the last reports of those tasks.
    """

    def __init__(
        self,
        submit: Any,
        tracker: Any,
        batch: int,
        *,
        floor: float = TIME_FLOOR,
        retries: int = RETRIES,
    ) -> None:
        self._submit = submit
        self.tracker = tracker
        self.batch = batch
        self.floor = floor
        self.retries = retries
        self.waiting: deque[Share] = deque()
        self.running: dict[Any, Running] = {}
        self._keys = itertools.count()
        self._seconds = 0.0  # analysis seconds and photos of the finished shares
        self._photos = 0
        self._last_look = 0.0
        self.submitted = 0  # tasks started, retries included
        self.sent_again = 0  # photos sent again after being given up on
        self.stalled: set[str] = set()  # nodes whose worker hung on no photo: kept clear

    def add(self, files: list[tuple[str, str]]) -> None:
        self.waiting.append(Share(files))

    def __bool__(self) -> bool:
        return bool(self.waiting or self.running)

    def start(self, slots: int, alive: list[str]) -> None:
        """Fill the free slots; a share kept away from some workers goes to another
        (``alive``: the node ids of the workers)."""
        while len(self.running) < slots and self.waiting:
            share = self.waiting.popleft()
            key = next(self._keys)
            ref = self._submit(share, key, self._node_for(share, alive))
            self.running[ref] = Running(share, key)
            self.submitted += 1

    def _node_for(self, share: Share, alive: list[str]) -> str | None:
        """Any node (None), or the least busy of those the share is not kept from."""
        avoided = {w.node for w in share.avoid}
        others = [n for n in alive if n not in avoided | self.stalled]
        if not (avoided | self.stalled) or not others:
            return None
        load = {n: 0 for n in others}
        for run in self.running.values():
            if run.where is not None and run.where.node in load:
                load[run.where.node] += 1
        return min(others, key=lambda n: load[n])

    def finished(self, ref: Any, done: ShardDone | None) -> Running:
        """The share of a task that ended (``done``: its answer; None: it failed)."""
        run = self.running.pop(ref)
        if done is not None:
            run.where = done.where
            self._seconds += done.seconds
            self._photos += len(done.results)
        return run

    def limit(self, run: Running) -> float:
        """Seconds ``run`` may go without progress."""
        if run.done < 0:
            return max(self.floor, SETUP_LIMIT)
        per_photo = self._seconds / self._photos if self._photos else 0.0
        return max(self.floor, FACTOR * per_photo * self.batch)

    def overdue(
        self,
        alive: list[str],
        cancel: Any,
        ready: Any = lambda ref: False,
        every: float = 1.0,
    ) -> list[GivenUp]:
        """Give up the shares without progress for longer than their limit.

        Asks the tracker at most every ``every`` seconds; ``cancel(ref)`` kills a task;
        a task whose result is ``ready(ref)`` (it finished since the last wait) is left
        to be collected, never cancelled.
        """
        now = time.monotonic()
        if now - self._last_look < every or not self.running:
            return []
        self._last_look = now
        seen = self.tracker([run.key for run in self.running.values()])
        nodes = set(alive)
        out: list[GivenUp] = []
        for ref, run in list(self.running.items()):
            where, done, attempt = seen.get(run.key, (None, -1, ""))
            if where is None:
                run.since = now  # not started yet: waits for a free worker
                continue
            if (where, done, attempt) != (run.where, run.done, run.attempt) or (
                where.node not in nodes  # a dead node: Ray retries
            ):
                run.where, run.done, run.attempt, run.since = where, done, attempt, now
                continue
            limit = self.limit(run)
            if now - run.since <= limit or ready(ref):
                continue
            cancel(ref)
            del self.running[ref]
            out.extend(self._stuck(run, where, limit))
        return out

    def _stuck(self, run: Running, where: Where, limit: float) -> list[GivenUp]:
        files = run.share.files
        if run.done < 0 or run.done >= len(files):  # the worker, not a photo: all again
            what = "to get ready" if run.done < 0 else "to hand the results back"
            self.stalled.add(where.node)  # new shares go to the other workers
            reason = f"the Ray worker{{s}} {{workers}} took longer than {limit:.0f} s {what}"
            return self.again(run.share, files, where, reason, store=False)
        suspects = files[run.done : run.done + self.batch]
        rest = files[: run.done] + files[run.done + self.batch :]
        if rest:
            self.waiting.appendleft(Share(rest, run.share.tries, run.share.avoid))
        reason = f"{TIME_LIMIT_PREFIX} {limit:.0f} s on the Ray worker{{s}} {{workers}}; skipped"
        out: list[GivenUp] = []
        for f in suspects:  # one by one: the stuck photo alone is given up
            out.extend(self.again(run.share, [f], where, reason, store=True))
        return out

    def crashed(self, ref: Any, error: str) -> list[GivenUp]:
        """The task ``ref`` whose worker process died on every Ray retry (``error``: a
        decoder crash, an out-of-memory kill): its photos go again one by one, so the
        one that kills workers is found, and given up to be stored after the retries."""
        seen = self.tracker([run.key for run in self.running.values()])
        run = self.running.pop(ref)
        where = seen.get(run.key, (run.where, -1))[0]  # its last try's worker, when known
        reason = f"the Ray worker{{s}} {{workers}} crashed reading it ({error}); skipped"
        out: list[GivenUp] = []
        for f in run.share.files:
            out.extend(self.again(run.share, [f], where, reason, store=True))
        return out

    def again(
        self,
        share: Share,
        files: list[tuple[str, str]],
        where: Where | None,
        reason: str,
        *,
        store: bool,
    ) -> list[GivenUp]:
        """Send ``files`` of ``share`` again, away from ``where`` (None: not known), or
        give them up when they were sent again :data:`RETRIES` times already
        (``reason`` names the workers as ``{workers}``)."""
        avoid = share.avoid if where is None or where in share.avoid else (*share.avoid, where)
        tries = share.tries + 1
        if tries > self.retries:
            names = ", ".join(w.name for w in avoid) or "that ran it"
            return [
                GivenUp(files, reason.format(s="s" if len(avoid) > 1 else "", workers=names), store)
            ]
        self.waiting.appendleft(Share(files, tries, avoid))
        self.sent_again += len(files)
        return []

    def decode_timed_out(self, run: Running, done: ShardDone, limit: float) -> list[GivenUp]:
        """Send the photos ``done``'s worker gave up after ``limit`` seconds of reading to
        another worker (that worker's mount may have stopped answering); after the
        retries they are given up, to be stored with the workers named."""
        files = [f for f in run.share.files if f[0] in set(done.timed_out)]
        if not files:
            return []
        reason = (
            f"{TIME_LIMIT_PREFIX} {limit:.0f} s to read and decode on the Ray worker{{s}}"
            " {workers}; skipped (damaged file?)"
        )
        return self.again(run.share, files, done.where, reason, store=True)

    def cancel_all(self, cancel: Any) -> None:
        for ref in self.running:
            cancel(ref)
        self.running.clear()
