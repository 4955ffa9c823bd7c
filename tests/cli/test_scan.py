"""Privacy of a scan through the command line: the photo folder is never written and no
connection is ever opened (the real pipeline on LFW photos).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from fake_scan import (
    lfw_folder,
)

from faceapp.engine import (
    album,
    oplog,
    people,
    pipeline,
    review,
)
from faceapp.engine.cluster import recluster
from faceapp.engine.library import Library

# ----------------------------------------------------------------------------- privacy


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under root (hidden ones too) with size, mtime and mode."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    st = root.stat()
    out["."] = (st.st_mtime_ns, st.st_mode)
    return out


def test_scan_cluster_and_edits_never_write_the_photo_folder_nor_go_online(
    tmp_path, lfw_dir, real_weights, monkeypatch, capsys
):
    """The real pipeline through the CLI, with every outgoing connection recorded and refused.

    None is allowed: the VGGFace2 weights are downloaded only on request
    (`faceapp weights --download`), never probed for.
    """
    from faceapp.cli import main
    from faceapp.engine import verify

    root = tmp_path / "photos"
    lfw_folder(root, lfw_dir, per_person=2)
    original = tree_state(root)
    attempts: list[tuple[object, str]] = []

    def refuse(address, *args, **kw):
        import traceback

        frames = {Path(f.filename).name for f in traceback.extract_stack()}
        attempts.append((address, "weights.py" if "weights.py" in frames else ", ".join(frames)))
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", lambda addr, *a, **k: refuse(addr))
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: refuse(addr))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, addr: refuse(addr))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: refuse(host))

    assert main(["scan", str(root), "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 8 and report["errors"] == []
    library_path = Path(report["library"])
    assert root not in library_path.parents
    lib = Library(library_path)
    recluster(lib)
    people.create_person(lib, "Anna", [lib.faces()[0].id])
    people.create_person(lib, "Ben", [lib.faces()[-1].id])
    people.merge(lib, ("person", album.parse_group_ref(lib, "Ben")[1]), ("person", 1))
    oplog.undo(lib)
    review.review(lib)
    assert main(["faces", "--library", str(library_path), "--json"]) == 0
    analyzer = pipeline.analyzer_for_library(lib, "cpu")
    photos = sorted(root.rglob("*.jpg"))
    verify.verify_photos(analyzer, photos[0], photos[1])
    assert main(["scan", str(root), "--device", "cpu"]) == 0  # a rescan
    capsys.readouterr()
    assert tree_state(root) == original
    assert attempts == []


def test_a_ray_time_limit_without_ray_or_not_above_zero_is_refused(tmp_path, capsys):
    from faceapp.cli import main

    for args in (["--ray-time-limit", "60"], ["--ray", "auto", "--ray-time-limit", "0"]):
        assert main(["scan", str(tmp_path), *args, "--library", str(tmp_path / "l.sqlite")]) == 2
        assert "--ray-time-limit takes a number of seconds above 0, with --ray" in (
            capsys.readouterr().err
        )
    assert not (tmp_path / "l.sqlite").exists()  # refused before anything was opened
