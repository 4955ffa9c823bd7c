"""Faces the detector missed, drawn by the user: cropped and embedded like a detected
face, kept by rescans; and "Try again" for the files a scan could not read."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from faceapp.cli import main
from faceapp.engine import add_face, library, model_versions, photos, pipeline
from faceapp.engine.add_face import AddFaceError
from faceapp.engine.library import LibraryError
from faceapp.engine.photo_dates import file_time


@pytest.fixture(scope="module")
def analyzer(real_weights):
    return pipeline.Analyzer.from_weights(real_weights, "cpu")


@pytest.fixture
def scanned(tmp_path, lfw_dir, analyzer, real_weights):
    root = tmp_path / "photos"
    root.mkdir()
    src = sorted((lfw_dir / "Colin_Powell").glob("*.jpg"))[0]
    shutil.copy(src, root / "colin.jpg")
    lib = library.open_library(root)
    model_versions.register_base(lib, real_weights)
    pipeline.scan(lib, root, analyzer)
    yield lib, root
    lib.close()


def test_a_drawn_face_is_embedded_like_a_detected_one_and_survives_rescans(scanned, analyzer):
    lib, root = scanned
    (detected,) = lib.faces()
    # the scan stored when the photo was taken (no EXIF date in LFW: the file's time)
    mtime = (root / "colin.jpg").stat().st_mtime_ns
    assert photos.photo(lib, detected.photo_id).taken_at == file_time(mtime)
    ids, vectors = lib.embeddings()
    reference = vectors[list(ids).index(detected.id)]
    with pytest.raises(AddFaceError, match=r"^that face is already marked on this photo: cl"):
        add_face.add_face(lib, analyzer, "colin.jpg", detected.box)
    with lib.transaction() as c:  # as if the detector had missed it
        c.execute("DELETE FROM faces WHERE id = ?", (detected.id,))
    fid = add_face.add_face(lib, analyzer, root / "colin.jpg", detected.box)
    ids, vectors = lib.embeddings()
    drawn = vectors[list(ids).index(fid)]
    assert float(((drawn - reference) ** 2).sum()) < 1e-4  # the same crop, the same network
    assert lib.conn.execute("SELECT manual, prob FROM faces WHERE id = ?", (fid,)).fetchone() == (
        1,
        1.0,
    )
    assert photos.photo(lib, detected.photo_id).faces[0].manual
    # the file changes (edited): the drawn face stays, the detector's twin of it is dropped
    with Image.open(root / "colin.jpg") as im:
        im.save(root / "colin.jpg", quality=70)
    report = pipeline.scan(lib, root, analyzer)
    assert report.photos == 1
    assert [f.id for f in lib.faces()] == [fid]


def test_bad_boxes_and_unknown_photos_are_refused(scanned, analyzer):
    lib, root = scanned
    with pytest.raises(LibraryError, match="at least 8 pixels"):
        add_face.add_face(lib, analyzer, "colin.jpg", (5, 5, 10, 10))
    with pytest.raises(LibraryError, match="at least 8 pixels"):
        add_face.add_face(lib, analyzer, "colin.jpg", (400, 400, 500, 500))
    with pytest.raises(AddFaceError, match="not a scanned photo"):
        add_face.add_face(lib, analyzer, "other.jpg", (0, 0, 50, 50))
    with pytest.raises(AddFaceError, match="not in the library's folder"):
        add_face.add_face(lib, analyzer, root.parent / "x.jpg", (0, 0, 50, 50))


def test_cli_add_face_names_the_new_face(scanned, capsys):
    lib, root = scanned
    (detected,) = lib.faces()
    with lib.transaction() as c:
        c.execute("DELETE FROM faces WHERE id = ?", (detected.id,))
    argv = ["add-face", str(root / "colin.jpg"), "--box", *map(str, detected.box)]
    argv += ["--library", str(lib.path), "--json", "--device", "cpu"]
    assert main([*argv, "--to", "Colin"]) == 1
    assert "--create" in capsys.readouterr().err
    assert main([*argv[:-3], "--create"]) == 2  # --create without --to
    capsys.readouterr()
    assert main([*argv, "--to", "Colin", "--create"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["name"], data["created"], data["moved"]) == ("Colin", True, 1)
    assert lib.face(data["face"]).person_id == data["person"]


def test_retry_reads_only_the_problem_files_again(scanned, analyzer, capsys):
    lib, root = scanned
    (root / "broken.jpg").write_bytes(b"not a photo at all")
    pipeline.scan(lib, root, analyzer)
    assert [p.path for p in photos.problems(lib)] == ["broken.jpg"]
    shutil.copy(root / "colin.jpg", root / "new.jpg")  # not a problem: retry leaves it
    report = pipeline.retry(lib, root, analyzer)
    assert report.photos == 0 and [p for p, _ in report.errors] == ["broken.jpg"]
    arr = np.asarray(Image.open(root / "colin.jpg"))
    Image.fromarray(arr[:, ::-1]).save(root / "broken.jpg")  # fixed by the user
    assert main(["retry", "--library", str(lib.path), "--json", "--device", "cpu"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {"read": 1, "faces": 1, "errors": []}
    assert photos.problems(lib) == []
    assert "new.jpg" not in lib.photo_states()
    (root / "gone.jpg").write_bytes(b"")  # a problem file the user then deletes
    pipeline.scan(lib, root, analyzer)
    assert [p.path for p in photos.problems(lib)] == ["gone.jpg"]
    (root / "gone.jpg").unlink()
    pipeline.retry(lib, root, analyzer)
    assert photos.problems(lib) == []
