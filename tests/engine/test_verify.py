"""Verify with bad input: every error names the photo it is about, and nothing hangs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from faceapp.engine import verify
from faceapp.engine.image_open import ImageError
from faceapp.engine.pipeline import Analyzer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def analyzer(real_weights) -> Analyzer:
    return Analyzer.from_weights(real_weights, "cpu")


@pytest.fixture
def photos(tmp_path, lfw_dir) -> dict[str, Path]:
    """A real face, and every kind of unusable file the attack used."""
    face = tmp_path / "face.jpg"
    shutil.copy(sorted((lfw_dir / "Aaron_Eckhart").glob("*.jpg"))[0], face)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(face.read_bytes()[:2000])
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    empty = tmp_path / "empty.jpg"
    empty.touch()
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (200, 200), "white").save(blank)
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    return {
        "face": face,
        "truncated": truncated,
        "text": text,
        "empty": empty,
        "blank": blank,
        "fifo": fifo,
        "zero": zero,
        "missing": tmp_path / "missing.jpg",
        "folder": tmp_path,
    }


BAD = {
    "truncated": "truncated",
    "text": "not an image",
    "empty": "empty",
    "fifo": "not a regular file",
    "zero": "not a regular file",
    "missing": "not found",
    "folder": "folder",
}


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("position", ["first", "second"])
def test_error_names_the_photo(analyzer, photos, bad, position):
    pair = (photos[bad], photos["face"]) if position == "first" else (photos["face"], photos[bad])
    with pytest.raises(ImageError) as info:
        verify.verify_photos(analyzer, *pair)
    message = str(info.value)
    assert message.startswith(f"{position} photo {photos[bad]}: ")
    assert BAD[bad] in message


def test_no_face_names_the_photo(analyzer, photos):
    with pytest.raises(verify.NoFaceError, match=r"no face found in the second photo \(.*blank"):
        verify.verify_photos(analyzer, photos["face"], photos["blank"])


def test_a_stalled_read_is_given_up(analyzer, photos, monkeypatch):
    monkeypatch.setattr(verify, "DECODE_TIME_LIMIT", 1.0)
    real = verify.load_image

    def stalled(path: Path):
        if path == photos["truncated"]:
            time.sleep(30)  # a read from a share that stopped answering
        return real(path)

    monkeypatch.setattr(verify, "load_image", stalled)
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match=r"^second photo .*truncated.jpg: took longer than 1 s"):
        verify.verify_photos(analyzer, photos["face"], photos["truncated"])
    assert time.perf_counter() - t0 < 15


def test_cli_verify_with_a_fifo_says_which_and_exits(photos, real_weights):
    done = subprocess.run(
        [sys.executable, "-m", "faceapp", "verify", str(photos["face"]), str(photos["fifo"])],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"faceapp: second photo {photos['fifo']}: not a regular file (a pipe, socket or device)"
    ]
