"""The scan on a real Ray cluster of processes on 127.0.0.1 (head + two worker nodes)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is not installed (make distributed installs it)")

from kill_checks import faces_with_embeddings

from faceapp.engine import check, distributed, library, model_versions, pipeline
from faceapp.engine.ray_local import LocalCluster, own_mounts_possible

pytestmark = pytest.mark.slow
own_mounts = pytest.mark.skipif(
    not own_mounts_possible(),
    reason="a worker node with mounts of its own needs Linux, root, unshare and nsenter",
)

PEOPLE = ["Colin_Powell", "Tony_Blair", "Gerhard_Schroeder"]


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(workers=2) as c:
        yield c


def _folder(root, lfw_dir, per_person: int):
    for name in PEOPLE:
        (root / name).mkdir(parents=True)
        for src in sorted((lfw_dir / name).glob("*.jpg"))[:per_person]:
            shutil.copy(src, root / name / src.name)
    return root


def test_ray_scan_stores_the_same_faces_and_embeddings_as_a_local_scan(
    cluster, tmp_path, lfw_dir, real_weights
):
    root = _folder(tmp_path / "photos", lfw_dir, 4)
    local = library.open_library(root, tmp_path / "local.sqlite")
    model_versions.register_base(local, real_weights)
    analyzer = pipeline.Analyzer.from_weights(real_weights, "cpu")
    local_report = pipeline.scan(local, root, analyzer)
    remote = library.open_library(root, tmp_path / "ray.sqlite")
    model_versions.register_base(remote, real_weights)
    stats: dict = {}
    report = distributed.scan(remote, root, real_weights, cluster.address, shard=3, stats=stats)
    assert report.errors == [] and report.photos == local_report.photos == 12
    assert report.faces == local_report.faces
    a, b = faces_with_embeddings(local), faces_with_embeddings(remote)
    assert a.keys() == b.keys()
    for path in a:
        assert len(a[path]) == len(b[path]), path
        for (box_a, v_a), (box_b, v_b) in zip(a[path], b[path], strict=True):
            assert np.allclose(box_a, box_b, atol=1e-3), path
            assert np.abs(v_a - v_b).max() < 1e-4, path
    assert stats["shards"] == 4 and stats["result_bytes"] > 0
    # a rescan reads nothing
    again = distributed.scan(remote, root, real_weights, cluster.address)
    assert again.photos == 0 and again.skipped_unchanged == 12


def test_workers_that_cannot_read_the_photos_are_named_before_any_work(cluster, tmp_path):
    with pytest.raises(distributed.DistributedError, match=r"cannot read .*same path"):
        distributed.check_paths([str(tmp_path / "not-mounted-here.jpg")])


def _library(root, path, weights):
    lib = library.open_library(root, path)
    model_versions.register_base(lib, weights)
    return lib


@own_mounts
def test_a_worker_without_the_photo_folder_is_named_before_any_work(
    cluster, tmp_path, lfw_dir, real_weights
):
    root = _folder(tmp_path / "photos", lfw_dir, 2)
    lib = _library(root, tmp_path / "ray.sqlite", real_weights)
    node = cluster.add_worker(own_mounts=True)
    index = len(cluster.nodes) - 2
    try:
        cluster.unmount(index, root)  # the folder is not mounted on that machine
        with pytest.raises(distributed.DistributedError) as caught:
            distributed.scan(lib, root, real_weights, cluster.address)
    finally:
        cluster.stop_worker(index)
    message = str(caught.value)
    assert re.match(rf"^the Ray worker on .*node {node[:8]}\) cannot read {root}/", message)
    assert message.endswith("at the same path as this machine (mount the folder there)")
    assert lib.conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0] == 0


@own_mounts
def test_photos_a_worker_cannot_open_go_to_the_workers_that_can(
    cluster, tmp_path, lfw_dir, real_weights
):
    root = _folder(tmp_path / "photos", lfw_dir, 4)
    lib = _library(root, tmp_path / "ray.sqlite", real_weights)
    cluster.add_worker(own_mounts=True)
    index = len(cluster.nodes) - 2
    gone: list[bool] = []

    def lose_mount(progress) -> None:  # after the path check: the mount drops there
        if not gone:
            gone.append(True)
            cluster.unmount(index, root)

    stats: dict = {}
    try:
        report = distributed.scan(
            lib, root, real_weights, cluster.address, shard=1, progress=lose_mount, stats=stats
        )
    finally:
        cluster.stop_worker(index)
    assert gone and stats["sent_again"] > 0  # that worker got photos and gave them back
    assert report.errors == [] and report.photos == 12
    _stored_once(lib, root)


def test_a_photo_whose_read_hangs_is_given_up_and_the_rest_stored_once(
    cluster, tmp_path, lfw_dir, real_weights
):
    root = _folder(tmp_path / "photos", lfw_dir, 4)
    lib = _library(root, tmp_path / "ray.sqlite", real_weights)
    stuck = sorted((root / PEOPLE[1]).glob("*.jpg"))[1]
    rel = stuck.relative_to(root).as_posix()

    def hang(progress) -> None:  # after the plan: reading it now blocks, as a dead mount
        if not stuck.is_fifo():
            stuck.unlink()
            os.mkfifo(stuck)

    stats: dict = {}
    report = distributed.scan(
        lib,
        root,
        real_weights,
        cluster.address,
        progress=hang,
        stats=stats,
        time_floor=20,
        retries=1,
        decode_limit=5,  # the worker's own limit per file (120 s), below the floor as then
    )
    assert [path for path, _ in report.errors] == [rel]
    reason = report.errors[0][1]
    workers = r"\S+ \([\d.]+, node \w{8}\)"
    assert re.fullmatch(
        rf"took longer than 5 s to read and decode on the Ray workers {workers}, {workers};"
        r" skipped \(damaged file\?\)",
        reason,
    ), reason
    assert lib.photo_errors() == [(rel, reason)]  # a later scan does not wait for it again
    # the worker gave that file up itself: it alone went to the other worker, once
    assert report.photos == 11 and stats["sent_again"] == 1
    paths = [row[0] for row in lib.conn.execute("SELECT path FROM photos WHERE status = 'ok'")]
    expected = {p.relative_to(root).as_posix() for p in root.rglob("*.jpg") if p.is_file()}
    assert sorted(paths) == sorted(expected) and len(expected) == 11
    twice = lib.conn.execute(
        "SELECT photo_id FROM faces GROUP BY photo_id, x1, y1, x2, y2 HAVING COUNT(*) > 1"
    ).fetchall()
    assert twice == []


def test_a_worker_killed_mid_scan_loses_no_photo_and_stores_none_twice(
    cluster, tmp_path, lfw_dir, real_weights
):
    root = _folder(tmp_path / "photos", lfw_dir, 8)
    lib = library.open_library(root, tmp_path / "ray.sqlite")
    model_versions.register_base(lib, real_weights)
    killed = threading.Event()

    def kill_once(progress) -> None:
        if progress.done >= 2 and not killed.is_set():
            killed.set()
            cluster.kill_worker(1)  # the node and every task running on it

    report = distributed.scan(lib, root, real_weights, cluster.address, shard=2, progress=kill_once)
    assert killed.is_set()
    assert report.errors == [] and report.photos == 24
    paths = [row[0] for row in lib.conn.execute("SELECT path FROM photos WHERE status = 'ok'")]
    assert len(paths) == len(set(paths)) == 24
    files = {p.relative_to(root).as_posix() for p in root.rglob("*.jpg")}
    assert set(paths) == files
    per_photo = lib.conn.execute(
        "SELECT COUNT(*) FROM faces GROUP BY photo_id HAVING COUNT(*) > 3"
    ).fetchall()
    assert per_photo == []  # no photo's faces stored twice


def _stored_once(lib, root) -> None:
    """Every photo of the folder stored exactly once, no face twice, the file sound."""
    paths = [row[0] for row in lib.conn.execute("SELECT path FROM photos WHERE status = 'ok'")]
    assert sorted(paths) == sorted({p.relative_to(root).as_posix() for p in root.rglob("*.jpg")})
    twice = lib.conn.execute(
        "SELECT photo_id FROM faces GROUP BY photo_id, x1, y1, x2, y2 HAVING COUNT(*) > 1"
    ).fetchall()
    assert twice == []
    assert check.full_check(lib.conn) == []


def _stored_photos(path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM photos WHERE status = 'ok'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_a_killed_scanning_process_resumes_where_it_stopped(
    cluster, tmp_path, lfw_dir, real_weights
):
    root = _folder(tmp_path / "photos", lfw_dir, 8)
    path = tmp_path / "ray.sqlite"
    lib = library.open_library(root, path)
    model_versions.register_base(lib, real_weights)
    command = [sys.executable, "-m", "faceapp", "scan", str(root), "--library", str(path)]
    head = subprocess.Popen(
        [*command, "--ray", cluster.address], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    end = time.monotonic() + 600
    while _stored_photos(path) == 0 and head.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    assert head.poll() is None, head.stderr.read().decode()
    os.kill(head.pid, signal.SIGKILL)  # the one writer, mid-scan
    head.wait()
    before = _stored_photos(path)
    assert head.returncode == -signal.SIGKILL and 0 < before < 24, head.stderr.read()
    report = distributed.scan(lib, root, real_weights, cluster.address, shard=4)
    assert report.errors == [] and report.photos == 24 - before
    _stored_once(lib, root)


def test_a_scan_whose_workers_all_die_stops_with_a_clear_error(
    cluster, tmp_path, lfw_dir, real_weights
):
    root = _folder(tmp_path / "photos", lfw_dir, 4)
    lib = library.open_library(root, tmp_path / "ray.sqlite")
    model_versions.register_base(lib, real_weights)
    killed: list[float] = []

    def kill_all(progress) -> None:
        if progress.done >= 1 and not killed:
            killed.append(time.monotonic())
            cluster.kill_workers()

    with pytest.raises(distributed.DistributedError, match=r"^no Ray worker left.*scan again"):
        distributed.scan(
            lib, root, real_weights, cluster.address, shard=1, progress=kill_all, worker_wait=10
        )
    assert killed and time.monotonic() - killed[0] < 120  # Ray notices the dead nodes, then 10 s
    # a cluster left without workers is refused before any work
    with pytest.raises(distributed.DistributedError, match="no worker with CPUs"):
        distributed.scan(lib, root, real_weights, cluster.address)
    # workers back: the next scan finishes what the first one left
    cluster.add_worker()
    report = distributed.scan(lib, root, real_weights, cluster.address, shard=4)
    assert report.errors == [] and 0 < report.photos < 12
    _stored_once(lib, root)
