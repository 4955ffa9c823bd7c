"""A real Ray cluster made of processes on this machine (head + worker nodes on
127.0.0.1), to try the distributed scan without other machines; its tests and
bench/distributed_scan.py use it. Each node is a ``ray start --block`` process
group that can be killed on its own, as a lost machine would be.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NODE_STORE = 500_000_000  # object store bytes per node: the weights (~100 MB) of a few scans,
# a killed one's included until Ray frees them (at 200 MB a rerun after a kill waited forever)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_mounts_possible() -> bool:
    """Can a worker node get a mount namespace of its own here (Linux, as root)?"""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("nsenter"):
        return False
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


class LocalCluster:
    """``with LocalCluster(workers=2) as c: distributed.scan(..., c.address)``."""

    def __init__(self, workers: int = 2, cpus_per_worker: int = 1) -> None:
        self.workers = workers
        self.cpus = cpus_per_worker
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # sockets: short path
        self.nodes: list[subprocess.Popen] = []
        self._ray = Path(sys.executable).with_name("ray")

    def _start(self, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        cmd = [*prefix, str(self._ray), "start", "--block", "--disable-usage-stats", *args]
        env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: killed as one machine
        )
        self.nodes.append(proc)
        return proc

    def __enter__(self) -> LocalCluster:
        try:
            self._start_nodes()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_nodes(self) -> None:
        self._start(
            "--head",
            f"--port={self.port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=0",  # the head only plans and stores, as on a real cluster
            "--include-dashboard=false",
            f"--object-store-memory={NODE_STORE}",
            f"--temp-dir={self.temp}",
        )
        self._wait_nodes(1)
        for _ in range(self.workers):
            self.add_worker()

    def add_worker(self, own_mounts: bool = False) -> str:
        """Start a worker node; its Ray node id. ``own_mounts``: in a mount namespace of
        its own (Linux, root), so that :meth:`unmount` can take a folder from it alone."""
        before = {n["NodeID"] for n in self._alive()}
        self._start(
            f"--address={self.address}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            f"--object-store-memory={NODE_STORE}",
            prefix=("unshare", "--mount", "--propagation", "private") if own_mounts else (),
        )
        self._wait_nodes(len(before) + 1)
        return next(n["NodeID"] for n in self._alive() if n["NodeID"] not in before)

    def unmount(self, index: int, folder: Path) -> None:
        """Worker node ``index`` (started with ``own_mounts``) sees ``folder`` empty from
        now on, as a machine whose mount of it is gone; the others still see it."""
        pid = str(self.nodes[1 + index].pid)
        mount = ["nsenter", "--target", pid, "--mount", "mount", "-t", "tmpfs", "none"]
        subprocess.run([*mount, str(folder)], check=True, capture_output=True)

    def stop_worker(self, index: int) -> None:
        """Stop worker node ``index`` as ``ray stop`` would, once Ray counts it gone."""
        alive = len(self._alive())
        proc = self.nodes[1 + index]
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        end = time.monotonic() + 120
        while len(self._alive()) >= alive and time.monotonic() < end:
            time.sleep(0.5)

    def _alive(self) -> list[dict]:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
        return [n for n in ray.nodes() if n.get("Alive")]

    def _wait_nodes(self, count: int, timeout: float = 300.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if len(self._alive()) >= count:
                    return
            except Exception:  # the head is still starting
                pass
            time.sleep(1.0)
        raise RuntimeError(f"the local Ray cluster did not reach {count} nodes")

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL worker node ``index`` (its raylet and its worker processes)."""
        proc = self.nodes[1 + index]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def kill_workers(self) -> None:
        """SIGKILL every worker node still running: a cluster left with its head only."""
        for index, proc in enumerate(self.nodes[1:]):
            if proc.poll() is None:
                self.kill_worker(index)

    def __exit__(self, *exc: object) -> None:
        import ray

        ray.shutdown()
        for proc in reversed(self.nodes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)
