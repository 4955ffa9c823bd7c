"""The second look finds real small faces on 12 MP photos that the detection copy
cannot show (MTCNN and LFW faces, no stubs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceapp.engine.detect import Detector
from faceapp.engine.images import load_image
from faceapp.engine.second_look import SecondLook, _scales

FACES = ["Colin_Powell/Colin_Powell_0001.jpg", "Tony_Blair/Tony_Blair_0005.jpg"]
# the face box of a deep-funneled LFW image, as a share of the pasted 200 px square
PASTE_SRC = (25, 20, 225, 220)
FACE_SHARE = 0.54


def group_photo(lfw_dir: Path, path: Path, sizes: list[int]) -> list[tuple[float, ...]]:
    """A 4000x3000 JPEG with LFW faces of the given face sizes (px) on a textured
    background; returns the face boxes."""
    rng = np.random.default_rng(0)
    noise = rng.integers(60, 200, (75, 100, 3), dtype=np.uint8)
    canvas = Image.fromarray(noise).resize((4000, 3000), Image.Resampling.BICUBIC)
    canvas = canvas.filter(ImageFilter.GaussianBlur(4))
    boxes = []
    for k, size in enumerate(sizes):
        side = round(size / FACE_SHARE)
        x, y = 700 + 1100 * k, 1300
        with Image.open(lfw_dir / FACES[k % len(FACES)]) as im:
            face = im.convert("RGB").crop(PASTE_SRC).resize((side, side), Image.Resampling.LANCZOS)
        canvas.paste(face, (x, y))
        boxes.append((x + 0.23 * side, y + 0.2 * side, x + 0.77 * side, y + 0.815 * side))
    canvas.save(path, quality=90)
    return boxes


def centre_in(box: tuple[float, ...], truth: tuple[float, ...]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]


def test_small_faces_missed_by_the_copy_are_found(lfw_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "group.jpg"
    truth = group_photo(lfw_dir, path, [45, 60, 200])
    before = Detector("cpu", threads=0, second_look=None).detect([load_image(path)])[0]
    assert [any(centre_in(f.box, t) for f in before) for t in truth] == [False, False, True]

    decoded = load_image(path)
    faces = Detector("cpu", threads=0).detect([decoded])[0]
    assert len(faces) == 3
    for t in truth:
        (face,) = [f for f in faces if centre_in(f.box, t)]
        side = t[2] - t[0]
        assert abs(face.size - side) < 0.4 * side  # a face-sized box, in display px
        assert face.prob > 0.9
        x1, y1, x2, y2 = face.box
        assert (face.landmarks[:, 0] > x1).all() and (face.landmarks[:, 0] < x2).all()
        assert (face.landmarks[:, 1] > y1).all() and (face.landmarks[:, 1] < y2).all()
    assert [f.prob for f in faces] == sorted((f.prob for f in faces), reverse=True)


def test_no_second_look_where_the_copy_is_the_photo(lfw_dir: Path) -> None:
    """An LFW image is its own detection copy: the first pass sees faces of 20 px,
    the second look only smaller ones, and finds nothing new on a portrait."""
    decoded = load_image(lfw_dir / FACES[0])
    plain = Detector("cpu", threads=0, second_look=None).detect([decoded])[0]
    faces = Detector("cpu", threads=0).detect([decoded])[0]
    assert [f.box for f in faces] == [f.box for f in plain]


@pytest.mark.parametrize(("smallest", "largest"), [(16, 40), (12, 20), (12, 28.2)])
def test_levels_cover_the_gap_between_the_passes(smallest: float, largest: float) -> None:
    scales = _scales(smallest, largest, 0.709)
    assert 12 / scales[0] == pytest.approx(max(smallest, 12))
    assert 12 / scales[-1] >= largest > 12 / scales[-2]


def test_second_look_is_off_when_nothing_smaller_is_wanted(lfw_dir: Path) -> None:
    decoded = load_image(lfw_dir / FACES[0])
    detector = Detector("cpu", threads=0)
    level = (0.6, np.ones((10, 10), np.float32))
    look = SecondLook(smallest=20)  # the first pass already sees 20 px faces here
    boxes, probs, points = look.find(detector, decoded, level, [])
    assert boxes.shape == (0, 4) and probs.shape == (0,) and points.shape == (0, 5, 2)
