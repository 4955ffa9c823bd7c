"""The scan on a Ray cluster: decode + detect + embed on the workers, one writer here.

The plan and store stages (:mod:`scan_plan`, :mod:`scan_store`) run in this process,
the only one that writes the library. The files to read are cut into shards; each
shard is a Ray task (:func:`distributed_work.analyze_files`) that reads its photos from
the shared folder, decodes and analyzes them (on the worker's GPU when it has one)
with a model built once per worker process, and returns :class:`scan_analyze.PhotoResult`
rows (face boxes, crops as JPEG, embeddings: a few kilobytes per face). Ray retries
the shard of a worker that died; a shard stuck on a worker is given up and sent
again elsewhere (:mod:`distributed_shares`). Each photo is stored in its own
transaction as its shard comes back, so a killed head resumes like a local scan.

Workers must read the photos at the same path as this machine (a shared mount):
before any work one task per node checks a file of each folder, and a photo a
worker cannot open while this machine can is sent to another worker, then reported.
Ray is optional: ``pip install 'faceapp[distributed]'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from faceapp.engine import distributed_work as work
from faceapp.engine import face_tags
from faceapp.engine import photos as photos_mod
from faceapp.engine import weights as weights_mod
from faceapp.engine.distributed_shares import RETRIES, TIME_FLOOR, GivenUp, Running, Shares
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.scan_analyze import PhotoResult
from faceapp.engine.scan_decode import timed_out
from faceapp.engine.scan_plan import ScanReport, plan_scan
from faceapp.engine.scan_store import ScanProgress, ScanStore

if TYPE_CHECKING:
    from faceapp.engine.pipeline import Analyzer

SHARD = 16  # photos per task: large enough to batch, small enough to retry cheaply
WORKER_WAIT = 60.0  # seconds a scan waits for a worker to come back before it stops
CHECK_WAIT = 120.0  # seconds the workers have to answer the path check
CHECK_FOLDERS = 200  # the path check reads a file of each folder, of this many at most
NOT_MOUNTED = (
    "the Ray worker{s} {workers} cannot open it at this path, which this machine can:"
    " mount the photo folder there at the same path"
)


class DistributedError(LibraryError):
    """The cluster cannot run this scan (no Ray, unreachable, photos not mounted)."""


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise DistributedError(
            "Ray is not installed: pip install 'faceapp[distributed]' (or make distributed)"
        ) from exc
    return ray


# -- on the head ----------------------------------------------------------------------------


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001``)."""
    ray = _ray()
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except Exception as exc:
        raise DistributedError(f"cannot join the Ray cluster at {address}: {exc}") from exc


def check_paths(paths: list[str]) -> None:
    """Every alive node with CPUs can read ``paths``; else one clear error naming it."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0)(work.unreadable)
    nodes = workers("CPU")
    if not nodes:
        raise DistributedError("the Ray cluster has no worker with CPUs")
    asked = [
        check.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(paths)
        for n in nodes
    ]
    end = time.monotonic() + CHECK_WAIT
    try:
        for node, ref in zip(nodes, asked, strict=True):
            try:
                host, missing = ray.get(ref, timeout=max(0.0, end - time.monotonic()))
            except Exception as exc:
                if not _alive(node["NodeID"]):
                    continue  # lost since it was listed (Ray notices after some seconds)
                raise DistributedError(
                    f"the Ray workers did not answer within {CHECK_WAIT:.0f} s"
                    f" ({type(exc).__name__}): is the cluster healthy?"
                ) from exc
            if missing:
                where = f"{host} ({node.get('NodeManagerAddress', '?')}, node {node['NodeID'][:8]})"
                more = f" (and {len(missing) - 1} more of {len(paths)})" if len(missing) > 1 else ""
                raise DistributedError(
                    f"the Ray worker on {where} cannot read {missing[0]}{more}: every worker"
                    " must see the photos at the same path as this machine (mount the folder"
                    " there)"
                )
    finally:
        for ref in ray.wait(asked, num_returns=len(asked), timeout=0)[1]:
            ray.cancel(ref, force=True)  # those that did not answer
    if not workers("CPU"):
        raise DistributedError("the Ray cluster has no worker with CPUs")


def _alive(node_id: str) -> bool:
    return any(n["NodeID"] == node_id and n.get("Alive") for n in _ray().nodes())


def workers(resource: str) -> list[dict]:
    """The alive nodes that can run a shard (at least one ``resource``: CPU or GPU)."""
    return [
        n for n in _ray().nodes() if n.get("Alive") and n.get("Resources", {}).get(resource, 0) >= 1
    ]


def _sample(todo: list[tuple[str, Path]], folders: int = CHECK_FOLDERS) -> list[str]:
    """A file of each folder (of ``folders`` spread over the list when there are more),
    and the last file: a folder mounted from elsewhere is a folder."""
    first: dict[Path, str] = {}
    for _, path in todo:
        first.setdefault(path.parent, str(path))
    picks = list(first.values())
    if len(picks) > folders:
        picks = [picks[i * len(picks) // folders] for i in range(folders)]
    if todo and str(todo[-1][1]) not in picks:
        picks.append(str(todo[-1][1]))
    return picks


def scan(
    lib: Library,
    root: Path,
    loaded: weights_mod.LoadedWeights,
    address: str,
    *,
    progress: Callable[[ScanProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    shard: int = SHARD,
    stats: dict | None = None,
    worker_wait: float = WORKER_WAIT,
    time_floor: float = TIME_FLOOR,
    retries: int = RETRIES,
) -> ScanReport:
    """:func:`pipeline.scan` with decode and analysis on a Ray cluster's workers.

    ``stats`` (optional) receives the bytes of results that came back and the shards.
    When no worker is left for ``worker_wait`` seconds the scan stops with a
    :class:`DistributedError`; what it stored stays, and the next scan resumes there.
    A shard without progress for ``time_floor`` seconds (more when the workers are
    slow per photo) is given up; a photo given up ``retries`` times is reported.
    """
    t0 = time.perf_counter()
    ray = _ray()
    connect(address)
    plan = plan_scan(lib, root)
    check_paths(_sample(plan.todo))
    # _OnDemand hands every attribute on to the Analyzer it builds
    analyzer = cast("Analyzer", _OnDemand(loaded))
    tags = face_tags.TagImporter(lib, analyzer, plan.root, plan.report.tags)
    store = ScanStore(lib, plan, progress=progress, started=t0, tags=tags)
    store.emit("")
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    device = "cuda" if gpus else "cpu"
    resource = "GPU" if gpus else "CPU"
    slots = max(2, int(2 * ray.cluster_resources().get(resource, 1)))
    # a GPU task takes its node's CPUs per GPU, to decode ahead of the GPU
    cpus = min((_cpus_per_gpu(n) for n in workers("GPU")), default=1) if gpus else 1
    tracker = _tracker(ray)
    shares = Shares(
        _submitter(ray, loaded, device, cpus, tracker),
        lambda running: _ask(ray, tracker.seen.remote(running)),
        work.batch_size(device),
        floor=time_floor,
        retries=retries,
    )
    for i in range(0, len(plan.todo), shard):
        shares.add([(rel, str(path)) for rel, path in plan.todo[i : i + shard]])
    received = 0
    writing = 0.0  # seconds in the store stage: the one writer's share of the time

    def cancel_task(ref) -> None:
        ray.cancel(ref, force=True)  # kills the worker process: a hung one too

    seen_worker = time.monotonic()
    alive: list[str] = []
    looked = 0.0
    try:
        while shares:
            if cancel is not None and cancel():
                plan.report.cancelled = True
                break
            if time.monotonic() - looked >= 1.0:  # the node list, once a second at most
                alive, looked = [n["NodeID"] for n in workers(resource)], time.monotonic()
            shares.start(slots, alive)
            ready, rest = ray.wait(list(shares.running), num_returns=1, timeout=1.0)
            if ready and rest:  # and all others already done
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            if ready or alive:
                seen_worker = time.monotonic()
            elif time.monotonic() - seen_worker > worker_wait:
                raise DistributedError(
                    f"no Ray worker left to scan on (none for {worker_wait:.0f} s):"
                    f" {store.done} of {len(plan.todo)} photos done; scan again to finish"
                    " (without --ray to scan here)"
                )
            for ref in ready:
                try:
                    done = ray.get(ref)
                except Exception as exc:  # retried RETRIES times; the next scan tries again
                    files = shares.finished(ref, None).share.files
                    reason = f"the Ray worker failed ({type(exc).__name__}); try again"
                    plan.report.errors.extend((rel, reason) for rel, _ in files)
                    continue
                run = shares.finished(ref, done)
                received += _result_bytes(done.results)
                elsewhere = _not_mounted(store, shares, run, done)
                t = time.perf_counter()
                _store(store, [r for r in done.results if r.rel not in elsewhere])
                writing += time.perf_counter() - t
            _give_up(store, shares.overdue(alive, cancel_task))
    finally:
        shares.cancel_all(cancel_task)
        ray.kill(tracker)
    if not plan.report.cancelled:
        photos_mod.fill_missing_dates(lib, plan.root)  # photos stored before dates were kept
    if stats is not None:
        stats.update(
            result_bytes=received,
            shards=shares.submitted,
            sent_again=shares.sent_again,
            store_seconds=writing,
            device=device,
        )
    return store.finish()


def _tracker(ray):
    """The progress tracker, an actor on this machine's node (it needs no CPU)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = ray.remote(num_cpus=0, max_restarts=-1)(work.Tracker)
    try:
        here = ray.get_runtime_context().get_node_id()
        actor = actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True))
    except Exception:  # a client connection has no node of its own
        pass
    return actor.remote()


def _ask(ray, ref) -> dict:
    """The tracker's answer; none (no task counted as stuck) when it does not answer."""
    try:
        return ray.get(ref, timeout=30)
    except Exception:
        return {}


def _cpus_per_gpu(node: dict) -> int:
    res = node.get("Resources", {})
    return max(1, int(res.get("CPU", 1) // max(res.get("GPU", 1), 1)))


def _submitter(ray, loaded: weights_mod.LoadedWeights, device: str, cpus: int, tracker):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(work.analyze_files)
    options = {
        "num_cpus": cpus,
        "num_gpus": 1 if device == "cuda" else 0,
        "max_retries": RETRIES,
        "retry_exceptions": False,
    }
    weights_ref = ray.put(loaded)

    def submit(share, key: int, node: str | None):
        where = {}
        if node is not None:  # kept away from a worker: to another (any if that one dies)
            where["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        return task.options(**options, **where).remote(
            weights_ref, share.files, device, tracker, key, cpus
        )

    return submit


def _not_mounted(store: ScanStore, shares: Shares, run: Running, done: work.ShardDone) -> set[str]:
    """Send the photos the worker could not open, but this machine can, to another
    worker (that one lacks the mount); the names of those sent."""
    files = [f for f in run.share.files if f[0] in done.unreadable and os.access(f[1], os.R_OK)]
    if files:
        _give_up(store, shares.again(run.share, files, done.where, NOT_MOUNTED, store=False))
    return {rel for rel, _ in files}


def _give_up(store: ScanStore, given: list[GivenUp]) -> None:
    """Report photos no worker finished; those that hung are kept as unreadable, so the
    next scan does not wait for them again (unless asked to try again)."""
    for g in given:
        if g.store:
            failed = [timed_out(Path(path), rel, g.reason) for rel, path in g.files]
            store.store([PhotoResult(d.rel, d.size, d.mtime_ns, "", error=d.error) for d in failed])
        else:
            store.report.errors.extend((rel, g.reason) for rel, _ in g.files)


class _OnDemand:
    """An analyzer on this machine, built only if a photo's face tags need one (a
    tagged box no worker-detected face matches is cropped and embedded here)."""

    def __init__(self, loaded: weights_mod.LoadedWeights) -> None:
        self._loaded = loaded
        self._analyzer: Analyzer | None = None

    def __getattr__(self, name: str):
        if self._analyzer is None:
            from faceapp.engine.pipeline import Analyzer

            self._analyzer = Analyzer.from_weights(self._loaded, "cpu")
        return getattr(self._analyzer, name)


def _store(store: ScanStore, results: list[PhotoResult]) -> None:
    """Store a shard's results; a known photo found under a new name is a move, and a
    photo another scan of the library stored meanwhile is left as it is."""
    fresh = []
    for r in results:
        if store.take_move(r.rel, r.size, r.mtime_ns, r.content_hash):
            continue
        if r.error is None and store.lib.is_stored(r.rel, r.size, r.mtime_ns):
            store.report.skipped_unchanged += 1
            store.done += 1
            continue
        fresh.append(r)
    store.store(fresh)


def _result_bytes(results: list[PhotoResult]) -> int:
    import pickle

    return len(pickle.dumps(results, protocol=5))
