"""The scan on a Ray cluster: decode + detect + embed on the workers, one writer here.

The plan and store stages (:mod:`scan_plan`, :mod:`scan_store`) run in this process,
the only one that writes the library. The files to read are cut into shards; each
shard is a Ray task that reads its photos from the shared folder, decodes them
(:class:`scan_decode.DecodeStream`) and analyzes them (:func:`scan_analyze.analyze_batch`,
on the worker's GPU when it has one) with a model built once per worker process, and
returns :class:`scan_analyze.PhotoResult` rows (face boxes, crops as JPEG, embeddings:
a few kilobytes per face). Ray retries the shard of a worker that died. Each photo is
stored in its own transaction as its shard comes back, so a killed head resumes
like a local scan.

Workers must read the photos at the same path as this machine (a shared mount);
before any work starts one task per node checks a few of the files.
Ray is optional: ``pip install 'faceapp[distributed]'``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from faceapp.engine import face_tags
from faceapp.engine import photos as photos_mod
from faceapp.engine import weights as weights_mod
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.scan_analyze import PhotoResult, analyze_batch
from faceapp.engine.scan_decode import DecodeStream
from faceapp.engine.scan_plan import ScanReport, plan_scan
from faceapp.engine.scan_store import ScanProgress, ScanStore

if TYPE_CHECKING:
    from faceapp.engine.pipeline import Analyzer

SHARD = 16  # photos per task: large enough to batch, small enough to retry cheaply
RETRIES = 3  # a shard whose worker died is run again up to this many times
BATCH = 4  # photos per detection/embedding batch on a CPU worker (32 on a GPU)
WORKER_WAIT = 60.0  # seconds a scan waits for a worker to come back before it stops
CHECK_WAIT = 120.0  # seconds the workers have to answer the path check


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


# -- on the workers -------------------------------------------------------------------------

_analyzers: dict[tuple[str, str], object] = {}  # per worker process: built once


def _analyzer(loaded: weights_mod.LoadedWeights, device: str):
    key = (loaded.sha256, device)
    if key not in _analyzers:
        from faceapp.engine.pipeline import Analyzer

        _analyzers[key] = Analyzer.from_weights(loaded, device)
    return _analyzers[key]


def analyze_files(
    loaded: weights_mod.LoadedWeights, files: list[tuple[str, str]], device: str = "cpu"
) -> list[PhotoResult]:
    """Decode and analyze a shard of files (on a worker): one result per file."""
    analyzer = _analyzer(loaded, device)
    batch_size = 32 if device == "cuda" else BATCH
    stream = DecodeStream([(rel, Path(p)) for rel, p in files], (), workers=2)
    out: list[PhotoResult] = []
    batch = []
    try:
        while stream:
            batch.append(stream.next())
            if len(batch) >= batch_size or not stream:
                out.extend(analyze_batch(analyzer, batch))
                batch = []
    finally:
        stream.close()
    return out


def unreadable(paths: list[str]) -> tuple[str, list[str]]:
    """(this node's address, the paths it cannot read)."""
    import socket

    missing = [p for p in paths if not os.access(p, os.R_OK)]
    return socket.gethostname(), missing


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

    check = ray.remote(num_cpus=0)(unreadable)
    nodes = workers("CPU")
    if not nodes:
        raise DistributedError("the Ray cluster has no worker with CPUs")
    asked = [
        check.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(paths)
        for n in nodes
    ]
    try:
        answers = ray.get(asked, timeout=CHECK_WAIT)
    except Exception as exc:  # a node died or hangs: nothing was scanned yet
        for ref in asked:
            ray.cancel(ref, force=True)
        raise DistributedError(
            f"the Ray workers did not answer within {CHECK_WAIT:.0f} s"
            f" ({type(exc).__name__}): is the cluster healthy?"
        ) from exc
    for node, (host, missing) in zip(nodes, answers, strict=True):
        if missing:
            where = f"{host} ({node.get('NodeManagerAddress', '?')})"
            raise DistributedError(
                f"the Ray worker on {where} cannot read {missing[0]}: every worker must see"
                " the photos at the same path as this machine (mount the folder there)"
            )


def workers(resource: str) -> list[dict]:
    """The alive nodes that can run a shard (at least one ``resource``: CPU or GPU)."""
    return [
        n for n in _ray().nodes() if n.get("Alive") and n.get("Resources", {}).get(resource, 0) >= 1
    ]


def _sample(todo: list[tuple[str, Path]], k: int = 3) -> list[str]:
    if not todo:
        return []
    picks = {0, len(todo) // 2, len(todo) - 1}
    return [str(todo[i][1]) for i in sorted(picks)][:k]


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
) -> ScanReport:
    """:func:`pipeline.scan` with decode and analysis on a Ray cluster's workers.

    ``stats`` (optional) receives the bytes of results that came back and the shards.
    When no worker is left for ``worker_wait`` seconds the scan stops with a
    :class:`DistributedError`; what it stored stays, and the next scan resumes there.
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
    task = ray.remote(analyze_files).options(
        num_cpus=1, num_gpus=1 if gpus else 0, max_retries=RETRIES, retry_exceptions=False
    )
    weights_ref = ray.put(loaded)
    shards = [
        [(rel, str(path)) for rel, path in plan.todo[i : i + shard]]
        for i in range(0, len(plan.todo), shard)
    ]
    slots = max(2, int(2 * ray.cluster_resources().get("GPU" if gpus else "CPU", 1)))
    waiting = iter(shards)
    running: dict = {}
    received = 0

    def submit() -> None:
        while len(running) < slots and (files := next(waiting, None)) is not None:
            running[task.remote(weights_ref, files, device)] = files

    submit()
    seen_worker = time.monotonic()
    try:
        while running:
            if cancel is not None and cancel():
                plan.report.cancelled = True
                break
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            if ready or workers("GPU" if gpus else "CPU"):
                seen_worker = time.monotonic()
            elif time.monotonic() - seen_worker > worker_wait:
                raise DistributedError(
                    f"no Ray worker left to scan on (none for {worker_wait:.0f} s):"
                    f" {store.done} of {len(plan.todo)} photos done; scan again to finish"
                    " (without --ray to scan here)"
                )
            for ref in ready:
                files = running.pop(ref)
                try:
                    results = ray.get(ref)
                except Exception as exc:  # retried RETRIES times; the next scan tries again
                    reason = f"the Ray worker failed ({type(exc).__name__}); try again"
                    plan.report.errors.extend((rel, reason) for rel, _ in files)
                    continue
                received += _result_bytes(results)
                _store(store, results)
            submit()
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
    if not plan.report.cancelled:
        photos_mod.fill_missing_dates(lib, plan.root)  # photos stored before dates were kept
    if stats is not None:
        stats.update(result_bytes=received, shards=len(shards), device=device)
    return store.finish()


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
