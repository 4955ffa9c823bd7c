"""When a photo was taken: EXIF DateTimeOriginal, then the other EXIF dates, else the
file's time; blank or impossible EXIF dates count as absent."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from faceapp.engine.images import load_image
from faceapp.engine.photo_dates import date_taken, exif_date, file_time


def photo(path, original=None, digitized=None, edited=None):
    exif = Image.Exif()
    if edited:
        exif[0x0132] = edited
    ifd = exif.get_ifd(0x8769)
    if original:
        ifd[0x9003] = original
    if digitized:
        ifd[0x9004] = digitized
    Image.new("RGB", (16, 16)).save(path, exif=exif)
    os.utime(path, (1_600_000_000, 1_600_000_000))
    return path


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"original": "2012:03:04 05:06:07"}, "2012-03-04T05:06:07"),
        ({"original": "0000:00:00 00:00:00", "digitized": "2013:01:02 03:04:05"},
         "2013-01-02T03:04:05"),
        ({"original": "    ", "edited": "2014:12:31 23:59:60"}, "2014-12-31T23:59:59"),
        ({"original": "2012:13:04 05:06:07"}, None),
        ({}, None),
    ],
)  # fmt: skip
def test_exif_date(tmp_path, tags, expected):
    path = photo(tmp_path / "p.jpg", **tags)
    with Image.open(path) as im:
        assert exif_date(im) == expected
    assert load_image(path).taken == expected
    assert date_taken(path) == (expected or file_time(1_600_000_000 * 10**9))
    assert date_taken(path, load_image(path)) == date_taken(path)


def test_date_of_a_file_pillow_cannot_read_is_its_time(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a photo")
    os.utime(path, (1_500_000_000, 1_500_000_000))
    assert date_taken(path) == file_time(1_500_000_000 * 10**9)
    with pytest.raises(OSError):
        date_taken(tmp_path / "gone.jpg")
