"""Never lose a label: bad files, hangs, moved and deleted photos, two processes,
untrusted weights, upgrades, privacy.

Most tests stand a fast fake analyzer in for MTCNN + FaceNet (one "face" per photo,
an embedding made from the pixels): what is under test is the bookkeeping around
the networks. The privacy test runs the real pipeline. The big runs are the
benches: bench/fuzz_scan.py (1,000+ files) and bench/kill_test.py (SIGKILLs).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceapp.engine import (
    album,
    library_schema,
    model_versions,
    oplog,
    people,
    pipeline,
    scan_decode,
    scan_plan,
    suggest,
)
from faceapp.engine.cluster import recluster
from faceapp.engine.detect import FaceBox
from faceapp.engine.image_open import ImageError
from faceapp.engine.images import load_image
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import NewFace
from faceapp.engine.pipeline import AnalyzedFace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import fuzz_scan  # noqa: E402

PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld"]


class FakeAnalyzer:
    """One face per photo (the central half), embedding from the pixels: fast, deterministic.

    Photos of one LFW person are not close in this space, which does not matter: the
    tests label faces themselves and check that the labels survive.
    """

    threshold = 1.0
    threshold_source = "test"

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, images):
        out = []
        for im in images:
            self.calls += 1
            assert im.small.mode == "RGB" and im.image.mode == "RGB"
            assert im.width >= 1 and im.height >= 1 and max(im.small.size) <= 1024
            w, h = im.width, im.height
            box = (w * 0.25, h * 0.25, w * 0.75, h * 0.75)
            pixels = np.asarray(im.small.convert("L").resize((16, 16)), np.uint8)
            rng = np.random.default_rng(zlib.crc32(pixels.tobytes()))
            v = rng.standard_normal(512).astype(np.float32)
            face = FaceBox(box, np.zeros((5, 2), np.float32), 0.99)
            out.append(
                [AnalyzedFace(face, np.zeros((160, 160, 3), np.uint8), v / np.linalg.norm(v))]
            )
        return out


def new_library(path: Path, root: Path) -> Library:
    lib = Library(path, root=root)
    model = lib.add_model(
        name="test",
        source="random-dev",
        origin="test",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    lib.set_active_model(model)
    return lib


def lfw_folder(root: Path, lfw_dir: Path, per_person: int = 3) -> list[str]:
    rels = []
    for name in PEOPLE:
        (root / name).mkdir(parents=True, exist_ok=True)
        for src in sorted((lfw_dir / name).glob("*.jpg"))[:per_person]:
            shutil.copy2(src, root / name / src.name)
            rels.append(f"{name}/{src.name}")
    return rels


def labels(lib: Library) -> dict[int, str]:
    """Confirmed face -> person name, for every face (missing photos too)."""
    rows = lib.conn.execute(
        "SELECT f.id, pe.name FROM faces f JOIN people pe ON pe.id = f.person_id"
    ).fetchall()
    return dict(rows)


def face_by_content(lib: Library) -> dict[str, tuple[int, str | None]]:
    """content hash -> (face id, person name) for photos present on disk (one face each)."""
    rows = lib.conn.execute(
        "SELECT p.content_hash, f.id, pe.name FROM faces f JOIN photos p ON p.id = f.photo_id"
        " LEFT JOIN people pe ON pe.id = f.person_id WHERE p.status = 'ok'"
    ).fetchall()
    return {h: (fid, name) for h, fid, name in rows}


def label_people(lib: Library) -> None:
    """Name every LFW person from their photos' faces, and reject one face from one."""
    by_person: dict[str, list[int]] = {}
    for f in lib.faces():
        by_person.setdefault(f.photo_path.split("/")[0], []).append(f.id)
    for name, ids in sorted(by_person.items()):
        people.create_person(lib, name.replace("_", " "), ids)
    bush = album.parse_group_ref(lib, "George W Bush")[1]
    people.reject_faces(lib, [by_person["Tony_Blair"][0]], bush)


# ----------------------------------------------------------------------------- bad files


def test_fuzz_corpus_scan_reports_every_bad_file_and_keeps_every_good_one(
    tmp_path, lfw_dir, monkeypatch
):
    """~160 damaged and odd files mixed with real photos (the bench runs 1,000+)."""
    root = tmp_path / "photos"
    sources = sorted((lfw_dir / "Colin_Powell").glob("*.jpg"))
    corpus = fuzz_scan.make_corpus(root, sources[20:60], 150, seed=1, big=0, unreadable=3)
    good = fuzz_scan.add_good_photos(root, sources[:20])
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
    verdict = fuzz_scan.check(corpus, good, fuzz_scan.library_photos(lib.path), report.errors)
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
    path.write_bytes(fuzz_scan.many_scans_jpeg(flat, 10_000))
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


@pytest.mark.skipif(not fuzz_scan.permissions_enforced(), reason="running as root without setpriv")
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
            [*fuzz_scan.unprivileged_prefix(), sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        path.chmod(0o644)
    assert out.stdout.strip() == "permission denied (cannot read the file)", out.stderr


# ----------------------------------------------------------------------------- moved and deleted


@pytest.fixture
def labelled(tmp_path, lfw_dir):
    """A scanned folder of 4 people x 3 LFW photos, every face named, one rejection."""
    root = tmp_path / "photos"
    lfw_folder(root, lfw_dir)
    lib = new_library(tmp_path / "lib.sqlite", root)
    pipeline.scan(lib, root, FakeAnalyzer())
    label_people(lib)
    return lib, root


def rejections(lib: Library) -> set[tuple[int, int]]:
    return set(lib.conn.execute("SELECT face_id, person_id FROM rejections").fetchall())


def test_moved_and_renamed_photos_keep_their_faces_and_labels(labelled):
    lib, root = labelled
    before, rejected, by_content = labels(lib), rejections(lib), face_by_content(lib)
    assert len(before) == 12 and len(rejected) == 1
    bush = sorted((root / "George_W_Bush").iterdir())
    bush[0].rename(root / "George_W_Bush" / "renamed.jpg")  # rename
    (root / "2004" / "trip").mkdir(parents=True)
    bush[1].rename(root / "2004" / "trip" / bush[1].name)  # move into a new folder
    (root / "Colin_Powell").rename(root / "2004" / "colin")  # move a whole folder
    report = pipeline.scan(lib, root, FakeAnalyzer())
    assert report.moved == 5 and report.photos == 0 and report.missing == 0
    assert labels(lib) == before and rejections(lib) == rejected
    assert face_by_content(lib) == by_content
    assert {g.name: g.count for g in album.groups(lib) if g.kind == "person"} == {
        "Colin Powell": 3,
        "Donald Rumsfeld": 3,
        "George W Bush": 3,
        "Tony Blair": 3,
    }


def test_swapped_and_renumbered_names_keep_labels_on_the_right_faces(labelled):
    """Renames that reuse names: each label must follow its photo's content, not its name."""
    lib, root = labelled
    before = face_by_content(lib)
    blair = sorted((root / "Tony_Blair").iterdir())
    bush = sorted((root / "George_W_Bush").iterdir())
    # swap a Blair photo and a Bush photo
    tmp = root / "swap.tmp"
    blair[0].rename(tmp)
    bush[0].rename(blair[0])
    tmp.rename(bush[0])
    # renumber Rumsfeld after deleting his first photo: 2 -> 1, 3 -> 2
    rums = sorted((root / "Donald_Rumsfeld").iterdir())
    gone = rums[0].read_bytes()
    rums[0].unlink()
    rums[1].rename(rums[0])
    rums[2].rename(rums[1])
    report = pipeline.scan(lib, root, FakeAnalyzer())
    after = face_by_content(lib)
    assert {h: after[h] for h in after} == {h: before[h] for h in after}, "labels followed names"
    assert len(after) == 11 and report.photos == 0
    # the deleted photo's face keeps its label while it is away, and returns with it
    (root / "back.jpg").write_bytes(gone)
    pipeline.scan(lib, root, FakeAnalyzer())
    assert face_by_content(lib) == before


def test_deleted_photos_leave_the_views_and_come_back_with_their_labels(labelled):
    lib, root = labelled
    before, rejected = labels(lib), rejections(lib)
    counts = {g.name: g.count for g in album.groups(lib) if g.kind == "person"}
    away = root.parent / "away"
    away.mkdir()
    blair = sorted((root / "Tony_Blair").iterdir())
    for path in blair[:2]:
        shutil.move(path, away / path.name)  # gone from the folder (new mtime when back)
    report = pipeline.scan(lib, root, FakeAnalyzer())
    assert report.missing == 2
    gone = {f.id for f in lib.faces(include_missing=True)} - {f.id for f in lib.faces()}
    assert len(gone) == 2
    assert not gone & set(lib.embeddings()[0])
    blair_id = album.parse_group_ref(lib, "Tony Blair")[1]
    assert not gone & set(album.group_faces(lib, "person", blair_id))
    assert {g.name: g.count for g in album.groups(lib) if g.kind == "person"} == counts | {
        "Tony Blair": 1
    }
    recluster(lib)  # clustering and edits meanwhile do not touch the absent faces' labels
    people.rename_person(lib, blair_id, "Tony Blair (PM)")
    assert {i: n for i, n in labels(lib).items() if i in gone} == {
        i: "Tony Blair (PM)" for i in gone
    }
    people.rename_person(lib, blair_id, "Tony Blair")
    for path in away.iterdir():
        shutil.copy(path, root / "Tony_Blair" / path.name)  # back, with a new mtime
    report = pipeline.scan(lib, root, FakeAnalyzer())
    assert report.photos == 0 and report.missing == 0  # not analysed again
    assert labels(lib) == before and rejections(lib) == rejected
    assert {g.name: g.count for g in album.groups(lib) if g.kind == "person"} == counts


# ----------------------------------------------------------------------------- two processes

HOLDER = textwrap.dedent(
    """
    import sys, time
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    with lib.transaction() as c:
        c.execute("INSERT INTO meta(key, value) VALUES ('holder', 'yes')")
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    """
)

WRITER = textwrap.dedent(
    """
    import sys
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    for i in range(int(sys.argv[3])):
        with lib.transaction() as c:
            c.execute("INSERT INTO people(name, created_at) VALUES (?, 0)", (f"{sys.argv[2]}{i}",))
            c.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
    """
)


def hold_write_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_writer_that_must_wait_waits_then_fails_with_a_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "lib.sqlite"
    Library(path).close()
    holder = hold_write_lock(path, 4.0)
    try:
        monkeypatch.setattr(library_schema, "BUSY_TIMEOUT_MS", 1000)
        lib = Library(path)
        assert lib.counts()["people"] == 0  # readers are never blocked (WAL)
        t0 = time.perf_counter()
        with pytest.raises(LibraryError, match="busy: another process is writing") as err:
            lib.set_meta("gui", "edit")
        assert 0.9 < time.perf_counter() - t0 < 3.5
        assert "\n" not in str(err.value)
        monkeypatch.setattr(library_schema, "BUSY_TIMEOUT_MS", 20_000)
        patient = Library(path)
        t0 = time.perf_counter()
        patient.set_meta("gui", "edit")  # waits for the holder, then writes
        assert time.perf_counter() - t0 > 1.0
    finally:
        holder.wait(timeout=30)
    assert patient.get_meta("holder") == "yes" and patient.get_meta("gui") == "edit"
    assert patient.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "lib.sqlite"
    Library(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "150"])
        for tag in ("gui-", "cli-")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lib = Library(path)
    names = {r[0] for r in lib.conn.execute("SELECT name FROM people")}
    assert names == {f"{t}{i}" for t in ("gui-", "cli-") for i in range(150)}
    assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_scans_of_one_library_at_once_store_each_face_once(labelled, lfw_dir):
    """The GUI and the CLI scanning the same folder together (two connections)."""
    lib, root = labelled
    before = labels(lib)
    extra = sorted((lfw_dir / "Gerhard_Schroeder").glob("*.jpg"))[:12]
    (root / "new").mkdir()
    for src in extra:
        shutil.copy(src, root / "new" / src.name)
    errors = []

    def scan() -> None:
        try:
            pipeline.scan(Library(lib.path), root, FakeAnalyzer())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    per_photo = lib.conn.execute("SELECT photo_id, COUNT(*) FROM faces GROUP BY photo_id")
    assert {n for _, n in per_photo} == {1}
    assert lib.counts() | {"people": 0} == {"photos": 24, "errors": 0, "faces": 24, "people": 0}
    assert labels(lib) == before
    assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ----------------------------------------------------------------------------- untrusted weights


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_weights(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "pwned"
    files = {}
    buf = io.BytesIO()
    torch.save({"model": Exploit(marker)}, buf)
    files["pickled code"] = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"conv2d_1a.conv.weight": torch.zeros(3, 3)}, buf)
    files["wrong tensors"] = buf.getvalue()
    files["truncated"] = files["wrong tensors"][:200]
    files["not torch"] = pickle.dumps({"a": 1})
    files["empty"] = b""
    out = {}
    for name, data in files.items():
        path = tmp_path / f"{name.replace(' ', '-')}.pt"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.mark.parametrize("command", ["scan", "verify", "weights"])
def test_cli_refuses_untrusted_weights_with_one_clear_line(tmp_path, capsys, command):
    from faceapp.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (60, 60)).save(folder / "a.jpg")
    for name, path in evil_weights(tmp_path).items():
        args = {
            "scan": ["scan", str(folder), "--library", str(tmp_path / "lib.sqlite")],
            "verify": ["verify", str(folder / "a.jpg"), str(folder / "a.jpg")],
            "weights": ["weights"],
        }[command] + ["--weights", str(path)]
        code = main(args)
        err = capsys.readouterr().err
        assert code != 0, name
        assert err.startswith("faceapp: ") and err.count("\n") == 1, (name, err)
        assert "Traceback" not in err and str(path) in err, (name, err)
    assert not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------- upgrades


def populated_library(path: Path) -> Library:
    lib = new_library(path, path.parent)
    v = np.ones(512, np.float32) / np.sqrt(512)
    lib.store_photo(
        "a.jpg",
        size=1,
        mtime_ns=1,
        width=10,
        height=10,
        content_hash="h",
        faces=[NewFace((1, 1, 5, 5), [[1, 1]] * 5, 0.9, b"jpeg", v)],
        model_id=lib.active_model().id,
    )
    people.create_person(lib, "Anna", [lib.faces()[0].id])
    return lib


def snapshot(conn: sqlite3.Connection) -> dict:
    return {
        t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("photos", "faces", "people", "embeddings", "oplog")
    }


@pytest.mark.parametrize("start", [0, library_schema.SCHEMA_VERSION])
def test_migration_backs_the_library_up_first_and_keeps_every_label(tmp_path, monkeypatch, start):
    from faceapp.engine import backup

    path = tmp_path / "lib.sqlite"
    lib = populated_library(path)
    if start == 0:  # a library from before versions were recorded
        with lib.transaction() as c:
            c.execute("DELETE FROM meta WHERE key = 'schema_version'")
    before = snapshot(lib.conn)
    lib.close()
    current = library_schema.SCHEMA_VERSION
    migrations = {v: "CREATE TABLE IF NOT EXISTS settings (key TEXT)" for v in range(current)}
    migrations[current] = (
        "ALTER TABLE people ADD COLUMN note TEXT; CREATE INDEX people_name ON people(name)"
    )
    monkeypatch.setattr(library_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(library_schema, "MIGRATIONS", migrations)
    upgraded = Library(path)
    assert upgraded.get_meta("schema_version") == str(current + 1)
    assert upgraded.conn.execute("SELECT name, note FROM people").fetchall() == [("Anna", None)]
    after = snapshot(upgraded.conn)
    after["people"] = [row[:-1] for row in after["people"]]  # without the new column
    assert after == before
    backups = backup.backups(path)
    assert [b.reason for b in backups] == [f"before-upgrade-v{start}"]
    old = sqlite3.connect(backups[0].path)
    assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert snapshot(old) == before
    assert "note" not in {r[1] for r in old.execute("PRAGMA table_info(people)")}


def test_failed_migration_leaves_the_library_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "lib.sqlite"
    before = snapshot(populated_library(path).conn)
    current = library_schema.SCHEMA_VERSION
    monkeypatch.setattr(library_schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(
        library_schema,
        "MIGRATIONS",
        {current: "ALTER TABLE people ADD COLUMN note TEXT; NOT SQL AT ALL"},
    )
    with pytest.raises(LibraryError, match="not a usable library"):
        Library(path)
    monkeypatch.setattr(library_schema, "SCHEMA_VERSION", current)
    again = Library(path)
    assert again.get_meta("schema_version") == str(current) and snapshot(again.conn) == before


def test_older_app_refuses_a_newer_library_from_the_cli(tmp_path, capsys):
    from faceapp.cli import main

    path = tmp_path / "lib.sqlite"
    populated_library(path).set_meta("schema_version", "99")
    assert main(["faces", "--library", str(path)]) == 1
    err = capsys.readouterr().err
    assert "newer Face Album" in err and "update" in err and err.count("\n") == 1


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
    suggest.suggestions(lib)
    assert main(["faces", "--library", str(library_path), "--json"]) == 0
    analyzer = pipeline.analyzer_for_library(lib, "cpu")
    photos = sorted(root.rglob("*.jpg"))
    verify.verify_photos(analyzer, photos[0], photos[1])
    assert main(["scan", str(root), "--device", "cpu"]) == 0  # a rescan
    capsys.readouterr()
    assert tree_state(root) == original
    assert attempts == []


def test_an_offline_library_keeps_its_weights_once_vggface2_is_downloaded(
    tmp_path, real_weights, monkeypatch
):
    """Going online must neither lock a CASIA-WebFace library out nor make it download."""
    import dataclasses

    from faceapp.engine import weights

    lib = Library(tmp_path / "lib.sqlite", root=tmp_path)
    model_versions.register_base(lib, real_weights)
    assert lib.active_model().source == "casia-webface"
    calls = []

    def vggface2(allow_download=False):
        calls.append(allow_download)
        return dataclasses.replace(real_weights, source="vggface2", sha256="f" * 64)

    monkeypatch.setattr(weights, "vggface2_weights", vggface2)
    loaded = model_versions.active_weights(lib)
    assert loaded.sha256 == real_weights.sha256 and calls == []
    # a new library still prefers VGGFace2 (the documented order)
    fresh = Library(tmp_path / "new.sqlite", root=tmp_path)
    assert model_versions.active_weights(fresh).source == "vggface2" and calls == [False]


def test_a_replaced_fine_tuned_weights_file_is_refused(tmp_path, real_weights):
    """Embeddings of one version must never be mixed with another network's."""
    path = tmp_path / "finetuned.pt"
    torch.save(real_weights.state_dict, path)
    lib = Library(tmp_path / "lib.sqlite", root=tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    model = lib.add_model(
        name="fine-tuned",
        source="finetuned",
        origin="test",
        sha256=sha,
        path=str(path),
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    lib.set_active_model(model)
    assert model_versions.active_weights(lib).sha256 == sha
    changed = dict(real_weights.state_dict)
    changed["last_bn.bias"] = changed["last_bn.bias"] + 1
    torch.save(changed, path)
    with pytest.raises(LibraryError, match="changed on disk"):
        model_versions.active_weights(lib)
