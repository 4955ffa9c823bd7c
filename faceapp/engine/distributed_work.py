"""What runs on a Ray cluster's workers during a distributed scan.

A shard task decodes and analyzes its files with a model built once per worker
process, telling a small :class:`Tracker` actor where it runs and how far it got:
the head reads that to give a stuck task up (see :mod:`distributed_shares`).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from faceapp.engine import gpu_decode, inference
from faceapp.engine import weights as weights_mod
from faceapp.engine.scan_analyze import PhotoResult, analyze_batch
from faceapp.engine.scan_decode import DECODE_TIME_LIMIT, DecodeStream


def batch_size(device: str) -> int:
    """Photos per detection/embedding batch, as in a local scan on ``device``."""
    return inference.CUDA_PHOTO_BATCH if device == "cuda" else inference.CPU_PHOTO_BATCH


@dataclass(frozen=True)
class Where:
    """A worker node: its Ray node id and a name for messages."""

    node: str
    name: str


def here() -> Where:
    """This worker's node."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    ip = ray.util.get_node_ip_address()
    return Where(node, f"{socket.gethostname()} ({ip}, node {node[:8]})")


@dataclass
class ShardDone:
    """A shard's answer: where it ran, one result per file, the files this worker could
    not open (not the photos' fault when the head can), its analysis seconds, and the
    files it gave up after its time limit per file (perhaps this worker's mount, not
    the photo: the head tries them on another worker before it stores them)."""

    where: Where
    results: list[PhotoResult]
    unreadable: list[str]
    seconds: float
    timed_out: list[str] = field(default_factory=list)


class Tracker:
    """Where each running shard is and how far it got: tasks report, the head reads.

    A report names the attempt (Ray's retry of a shard has the same key): a retry that
    starts over where a dead attempt had got to is still seen to start over.
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Where, int, str]] = {}

    def report(self, key: int, where: Where, done: int, attempt: str = "") -> None:
        self._seen[key] = (where, done, attempt)

    def seen(self, running: list[int]) -> dict[int, tuple[Where, int, str]]:
        """The last reports of the ``running`` shards (the others are forgotten)."""
        self._seen = {k: self._seen[k] for k in running if k in self._seen}
        return self._seen


_analyzers: dict[tuple[str, str], object] = {}  # per worker process: built once


def _analyzer(loaded: weights_mod.LoadedWeights, device: str, cpus: int):
    key = (loaded.sha256, device)
    if key not in _analyzers:
        from faceapp.engine.pipeline import Analyzer

        _analyzers[key] = Analyzer.from_weights(loaded, device)
    # the task's CPUs, not the node's (which its plan counts): one task runs per CPU
    import torch

    torch.set_num_threads(cpus)
    return _analyzers[key]


def analyze_files(
    loaded: weights_mod.LoadedWeights,
    files: list[tuple[str, str]],
    device: str = "cpu",
    tracker=None,
    key: int = 0,
    cpus: int = 1,
    decode_limit: float = DECODE_TIME_LIMIT,
) -> ShardDone:
    """Decode and analyze a shard of ``(rel, path)`` files (on a worker, ``cpus`` of its
    CPUs; on a GPU worker JPEGs are decoded by the GPU, as in a local scan there), each
    file given up after ``decode_limit`` seconds.

    Reports to ``tracker`` (an actor handle) -1 while the model is built, then the
    photos done after each batch.
    """
    import ray

    where = here()
    attempt = ray.get_runtime_context().get_worker_id()  # a retry runs in another process

    def report(done: int) -> None:
        if tracker is not None:
            tracker.report.remote(key, where, done, attempt)

    report(-1)
    analyzer = _analyzer(loaded, device, cpus)
    report(0)
    t0 = time.monotonic()
    stream = DecodeStream(
        [(rel, Path(p)) for rel, p in files],
        (),
        workers=max(2, cpus - 1),
        load=gpu_decode.loader(device),
        limit=decode_limit,
    )
    out: list[PhotoResult] = []
    batch = []
    try:
        while stream:
            batch.append(stream.next())
            if len(batch) >= batch_size(device) or not stream:
                out.extend(analyze_batch(analyzer, batch))
                batch = []
                report(len(out))
    finally:
        stream.close()
    # not os.access on a timed-out file: on a mount that stopped answering it hangs too
    failed = {r.rel for r in out if r.error is not None} - set(stream.timed_out)
    unreadable = [rel for rel, p in files if rel in failed and not os.access(p, os.R_OK)]
    return ShardDone(where, out, unreadable, time.monotonic() - t0, stream.timed_out)


def unreadable(paths: list[str]) -> tuple[str, list[str]]:
    """(this node's host name, the paths it cannot read)."""
    missing = [p for p in paths if not os.access(p, os.R_OK)]
    return socket.gethostname(), missing
