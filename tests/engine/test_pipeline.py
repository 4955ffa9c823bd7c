"""End-to-end: scan a folder of real LFW faces into a library."""

import copy
import dataclasses
import shutil
import zlib

import numpy as np
import pytest

from faceapp.engine import library, model_versions, pipeline
from faceapp.engine.verify import pairwise_squared

PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair"]
PER_PERSON = 4


@pytest.fixture(scope="module")
def analyzer(real_weights):
    return pipeline.Analyzer.from_weights(real_weights, "cpu")


@pytest.fixture
def folder(tmp_path, lfw_dir):
    root = tmp_path / "photos"
    for name in PEOPLE:
        (root / name).mkdir(parents=True)
        for src in sorted((lfw_dir / name).glob("*.jpg"))[:PER_PERSON]:
            shutil.copy(src, root / name / src.name)
    return root


def add_bad_files(root):
    bad = root / "bad"
    bad.mkdir()
    good = next(root.glob("*/*.jpg")).read_bytes()
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("this is not a photo")
    (bad / "loop").symlink_to(root, target_is_directory=True)
    # a 30000x30000 PNG: valid header, declared size far beyond any real photo
    ihdr = (30000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk
    png += zlib.crc32(chunk).to_bytes(4, "big") + b"\0\0\0\0IEND\xaeB`\x82"
    (bad / "huge.png").write_bytes(png)
    return {"bad/truncated.jpg", "bad/empty.jpg", "bad/notes.jpg", "bad/huge.png"}


def with_plan(analyzer, **changes):
    """The analyzer with another inference plan (batch size, analysis threads)."""
    other = copy.copy(analyzer)
    other.plan = dataclasses.replace(analyzer.plan, **changes)
    return other


def scan(folder, analyzer, real_weights, **kw):
    lib = library.open_library(folder)
    model_versions.register_base(lib, real_weights)
    return lib, pipeline.scan(lib, folder, analyzer, **kw)


def test_scan_finds_every_subject_and_separates_people(folder, analyzer, real_weights):
    lib, report = scan(folder, analyzer, real_weights)
    assert report.photos == len(PEOPLE) * PER_PERSON
    assert report.errors == []
    faces = lib.faces()
    # LFW images are centred on their subject: one face box near the centre of each photo
    central = {}
    for f in faces:
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        if abs(cx - 125) < 30 and abs(cy - 125) < 30:
            assert 50 < f.box[2] - f.box[0] < 200
            central[f.photo_path] = f.id
    assert len(central) == report.photos
    ids, vectors = lib.embeddings()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    row = {fid: i for i, fid in enumerate(ids)}
    paths = sorted(central)
    v = vectors[[row[central[p]] for p in paths]]
    d = pairwise_squared(v, v)
    same = np.array([[a.split("/")[0] == b.split("/")[0] for b in paths] for a in paths])
    off_diag = ~np.eye(len(paths), dtype=bool)
    threshold = lib.active_model().threshold
    correct = (d < threshold) == same
    assert correct[off_diag].mean() >= 0.95  # LFW accuracy is ~0.99; 12 photos allow one slip
    assert np.median(d[same & off_diag]) < 0.75 * threshold
    assert np.median(d[~same]) > threshold


def test_batches_analysed_at_once_store_what_one_at_a_time_stores(
    folder, analyzer, real_weights, tmp_path
):
    """Two analysis threads (the plan on a 2-core machine) against one: the library
    ends the same, photo for photo and face for face, in the same order."""
    results = {}
    for workers in (1, 2):
        one = with_plan(analyzer, analyze_workers=workers, photo_batch=2)
        root = tmp_path / f"w{workers}"
        shutil.copytree(folder, root)
        lib, report = scan(root, one, real_weights)
        assert report.photos == len(PEOPLE) * PER_PERSON and report.errors == []
        ids, vectors = lib.embeddings()
        faces = {f.id: f for f in lib.faces()}
        results[workers] = ([(faces[i].photo_path, faces[i].box) for i in ids], vectors)
    assert results[1][0] == results[2][0]
    np.testing.assert_allclose(results[1][1], results[2][1], atol=1e-5)


def test_rescan_touches_only_new_or_changed_files(folder, analyzer, real_weights):
    _, first = scan(folder, analyzer, real_weights)
    _, again = scan(folder, analyzer, real_weights)
    assert again.photos == 0 and again.skipped_unchanged == first.photos
    extra = folder / "Tony_Blair" / "copy.jpg"
    shutil.copy(next((folder / "Colin_Powell").glob("*.jpg")), extra)
    _, third = scan(folder, analyzer, real_weights)
    assert third.photos == 1


def test_bad_files_are_reported_and_skipped(folder, analyzer, real_weights):
    expected_bad = add_bad_files(folder)
    _, report = scan(folder, analyzer, real_weights)
    assert {p for p, _ in report.errors} == expected_bad
    assert all(reason for _, reason in report.errors)
    assert report.photos == len(PEOPLE) * PER_PERSON


def test_cancelled_scan_resumes_where_it_stopped(folder, analyzer, real_weights):
    seen = []
    one_by_one = with_plan(analyzer, photo_batch=1, analyze_workers=2)
    lib, report = scan(
        folder, one_by_one, real_weights, progress=seen.append, cancel=lambda: len(seen) > 2
    )
    assert report.cancelled
    stored = lib.counts()["photos"]
    assert 0 < stored < len(PEOPLE) * PER_PERSON
    lib, rest = scan(folder, analyzer, real_weights)
    assert rest.skipped_unchanged == stored
    assert lib.counts()["photos"] == len(PEOPLE) * PER_PERSON
    assert seen[-1].total == len(PEOPLE) * PER_PERSON


def test_moved_photo_keeps_its_faces_and_labels(folder, analyzer, real_weights):
    lib, _ = scan(folder, analyzer, real_weights)
    before = {f.id for f in lib.faces()}
    src = next((folder / "Tony_Blair").glob("*.jpg"))
    (folder / "moved").mkdir()
    src.rename(folder / "moved" / src.name)
    lib, report = scan(folder, analyzer, real_weights)
    assert report.moved == 1 and report.photos == 0
    assert {f.id for f in lib.faces()} == before
