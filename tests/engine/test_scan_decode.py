"""Bad files in a scan: every damaged, odd or hostile file is one reported line, every good
photo is kept, and no file can stall the scan.

A fast fake analyzer stands in for MTCNN + FaceNet (tests/fake_scan.py): what is under
test is the bookkeeping around the networks. bench/fuzz_scan.py runs the same corpus
with 1,000+ files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from damaged_photos import add_good_photos, make_corpus
from fake_scan import (
    FakeAnalyzer,
    new_library,
)
from photo_bytes import many_scans_jpeg
from PIL import Image
from scan_verdict import check, library_photos, permissions_enforced, unprivileged_prefix

from faceapp.engine import (
    pipeline,
    scan_decode,
    scan_plan,
)
from faceapp.engine.image_open import ImageError
from faceapp.engine.images import load_image

# ----------------------------------------------------------------------------- bad files


def test_fuzz_corpus_scan_reports_every_bad_file_and_keeps_every_good_one(
    tmp_path, lfw_dir, monkeypatch
):
    """~160 damaged and odd files mixed with real photos (the bench runs 1,000+)."""
    root = tmp_path / "photos"
    sources = sorted((lfw_dir / "Colin_Powell").glob("*.jpg"))
    corpus = make_corpus(root, sources[20:60], 150, seed=1, big=0, unreadable=3)
    good = add_good_photos(root, sources[:20])
    if os.geteuid() == 0:  # root reads chmod 000 files: make them unreadable another way
        real_open = open

        def no_permission(path, *args, **kw):
            if Path(path).name.startswith("unreadable-"):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kw)

        monkeypatch.setattr(scan_decode, "open", no_permission, raising=False)
    lib = new_library(tmp_path / "lib.sqlite", root)
    analyzer = FakeAnalyzer()
    try:
        t0 = time.perf_counter()
        report = pipeline.scan(lib, root, analyzer)
        elapsed = time.perf_counter() - t0
    finally:
        for path in root.rglob("unreadable-*"):
            path.chmod(0o644)
    verdict = check(corpus, good, library_photos(lib.path), report.errors)
    assert verdict.lost == [] and verdict.wrong == [] and verdict.unclear_reasons == []
    assert verdict.files_tried >= 150
    assert verdict.good_processed == verdict.good_expected >= 60
    assert verdict.bad_reported == verdict.bad_expected >= 40
    assert analyzer.calls == report.photos
    assert elapsed < 60
    reasons = dict(report.errors)
    assert "permission denied" in reasons["fuzz/unreadable-0.jpg"].lower()
    assert any("scans" in r for r in reasons.values())  # the endless progressive JPEG
    # the report can be printed and saved as JSON whatever the file names were
    json.dumps(report.as_dict(), ensure_ascii=False).encode("utf-8")


def test_progressive_jpeg_with_endless_scans_is_refused_at_once(tmp_path):
    """A 350 KB file of 10,000 empty scans would keep a decoder busy for minutes."""
    flat = Image.new("RGB", (4000, 3000), (120, 130, 140))
    path = tmp_path / "stall.jpg"
    path.write_bytes(many_scans_jpeg(flat, 10_000))
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="scans"):
        load_image(path)
    assert time.perf_counter() - t0 < 2
    ok = tmp_path / "progressive.jpg"
    flat.resize((400, 300)).save(ok, "JPEG", progressive=True)
    assert load_image(ok).width == 400


def test_only_photo_formats_are_decoded(tmp_path):
    """A '.jpg' that is really EPS (Ghostscript) or another exotic format is not decoded."""
    img = Image.new("RGB", (64, 48), (200, 10, 10))
    for fmt in ("EPS", "PCX", "TGA", "SGI"):
        path = tmp_path / f"{fmt}.jpg"
        img.save(path, fmt)
        with pytest.raises(ImageError, match="not an image"):
            load_image(path)
    gif = tmp_path / "web-download.jpg"
    img.save(gif, "GIF")
    assert load_image(gif).format == "GIF"


def test_a_decode_that_never_ends_costs_one_file_not_the_scan(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(6):
        Image.new("RGB", (80, 60), (i * 40, 0, 0)).save(root / f"ok{i}.jpg")
    for name in ("stuck1.jpg", "stuck2.jpg"):
        Image.new("RGB", (80, 60)).save(root / name)
    release = threading.Event()
    real = scan_decode.load_image
    decoded: list[str] = []

    def sometimes_stuck(path, *args, **kw):
        decoded.append(Path(path).name)
        if Path(path).name.startswith("stuck"):
            release.wait(60)  # a decoder spinning on a crafted file
        return real(path, *args, **kw)

    monkeypatch.setattr(scan_decode, "load_image", sometimes_stuck)
    monkeypatch.setattr(scan_decode, "DECODE_TIME_LIMIT", 0.5)
    lib = new_library(tmp_path / "lib.sqlite", root)
    try:
        t0 = time.perf_counter()
        report = pipeline.scan(lib, root, FakeAnalyzer(), decode_workers=2)
        assert time.perf_counter() - t0 < 10
        assert report.photos == 6
        reasons = dict(report.errors)
        assert set(reasons) == {"stuck1.jpg", "stuck2.jpg"}
        assert all("took longer than" in r for r in reasons.values())
        # the next scan reports them again without waiting on them again
        decoded.clear()
        t0 = time.perf_counter()
        again = pipeline.scan(lib, root, FakeAnalyzer())
        assert time.perf_counter() - t0 < 2
        assert set(dict(again.errors)) == {"stuck1.jpg", "stuck2.jpg"} and decoded == []
        # once the file changes it is tried again
        Image.new("RGB", (90, 60)).save(root / "stuck1.jpg")
        release.set()
        third = pipeline.scan(lib, root, FakeAnalyzer())
        assert third.photos == 1 and set(dict(third.errors)) == {"stuck2.jpg"}
    finally:
        release.set()


@pytest.mark.parametrize("budget", [1, 10**9])
def test_big_decoded_photos_waiting_for_the_networks_are_bounded(tmp_path, monkeypatch, budget):
    """With a pixel budget, few big photos are decoded ahead; without it, PREFETCH are."""
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(16):
        Image.new("RGB", (300, 200), (i * 15, 0, 0)).save(root / f"{i:02d}.png")
    decoded = []
    real = scan_decode.load_image
    monkeypatch.setattr(scan_decode, "load_image", lambda p, *a, **k: decoded.append(p) or real(p))
    monkeypatch.setattr(scan_decode, "PREFETCH_PIXELS", budget)
    ahead = []

    class Watching(FakeAnalyzer):
        def analyze(self, images):
            time.sleep(0.05)  # let the decoders run ahead as far as they may
            ahead.append(len(decoded) - self.calls)
            return super().analyze(images)

    report = pipeline.scan(new_library(tmp_path / "lib.sqlite", root), root, Watching())
    assert report.photos == 16
    if budget == 1:  # after the first batch: the batch being filled, the two decoding
        assert max(ahead[1:]) <= pipeline.BATCH + 2, ahead
    else:
        assert max(ahead) >= scan_decode.PREFETCH, ahead


def test_file_name_that_is_not_utf8_is_reported_and_the_scan_goes_on(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    Image.new("RGB", (80, 60)).save(root / "fine.jpg")
    with open(os.fsencode(root) + b"/caf\xe9.jpg", "wb") as fh:  # Latin-1 name from an old camera
        Image.new("RGB", (80, 60)).save(fh, "JPEG")
    lib = new_library(tmp_path / "lib.sqlite", root)
    report = pipeline.scan(lib, root, FakeAnalyzer())
    assert report.photos == 1
    assert report.errors == [("caf\\xe9.jpg", scan_plan.NAME_NOT_UTF8)]
    json.dumps(report.as_dict(), ensure_ascii=False).encode("utf-8")


def test_unreadable_folder_is_reported(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    (root / "locked").mkdir(parents=True)
    Image.new("RGB", (80, 60)).save(root / "open.jpg")
    Image.new("RGB", (80, 60)).save(root / "locked" / "inside.jpg")
    if os.geteuid() == 0:  # root lists any folder: refuse this one the way the OS would
        real_scandir = os.scandir

        def scandir(path="."):
            if Path(path).name == "locked":
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        (root / "locked").chmod(0)
    try:
        lib = new_library(tmp_path / "lib.sqlite", root)
        report = pipeline.scan(lib, root, FakeAnalyzer())
    finally:
        (root / "locked").chmod(0o755)
    assert report.photos == 1
    assert [(p, "permission denied" in r) for p, r in report.errors] == [("locked", True)]


@pytest.mark.skipif(not permissions_enforced(), reason="running as root without setpriv")
def test_chmod_000_file_gives_a_clear_reason(tmp_path):
    """For real: a child without the capabilities that let root read anything."""
    path = tmp_path / "locked.jpg"
    Image.new("RGB", (30, 20)).save(path)
    path.chmod(0)
    code = (
        "import sys; from faceapp.engine.images import load_image, ImageError\n"
        "try:\n    load_image(sys.argv[1])\nexcept ImageError as e:\n    print(e)\n"
    )
    try:
        out = subprocess.run(
            [*unprivileged_prefix(), sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        path.chmod(0o644)
    assert out.stdout.strip() == "permission denied (cannot read the file)", out.stderr
