"""Decoding through torchvision (the GPU scan's decoder) gives the photo Pillow gives.

The same code runs with nvJPEG on CUDA and libjpeg-turbo on CPU, so its logic
(orientation, detection copy, fall-backs) is checked here on any machine; the CUDA
run itself is in tests/engine/test_cuda.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceapp.engine.gpu_decode import load_image_torch, loader
from faceapp.engine.images import ImageError, load_image


def _photo(path: Path, orientation: int = 1) -> Path:
    rng = np.random.default_rng(0)
    base = np.kron(
        rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), np.ones((40, 40, 1), np.uint8)
    )
    im = Image.fromarray(base)  # 1600 x 1200, blocks so that JPEG keeps it close
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, quality=92, exif=exif)
    return path


@pytest.mark.parametrize("orientation", [1, 6])
def test_same_photo_as_pillow(tmp_path: Path, orientation: int) -> None:
    path = _photo(tmp_path / "a.jpg", orientation)
    ours = load_image_torch(path, "cpu")
    ref = load_image(path, full_resolution=True)
    assert (ours.width, ours.height) == (ref.width, ref.height)
    assert ours.image.size == ref.image.size and ours.scale_image == 1.0
    assert ours.small.size == ref.small.size and ours.scale_small == ref.scale_small
    assert ours.orientation == orientation
    diff = np.abs(np.asarray(ours.image, np.int16) - np.asarray(ref.image, np.int16))
    assert diff.mean() < 1.0
    assert np.abs(np.asarray(ours.small, np.int16) - np.asarray(ref.small, np.int16)).mean() < 1.0


def test_other_files_go_through_pillow(tmp_path: Path) -> None:
    png = tmp_path / "b.png"
    Image.new("RGB", (64, 48), (10, 20, 30)).save(png)
    assert load_image_torch(png, "cpu").image.getpixel((5, 5)) == (10, 20, 30)
    bad = tmp_path / "c.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError):
        load_image_torch(bad, "cpu")


def test_cpu_scans_keep_pillow() -> None:
    assert loader("cpu") is None  # the scan's default Pillow decoder
