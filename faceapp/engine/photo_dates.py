"""When a photo was taken: its EXIF date, else the file's modification time."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from faceapp.engine.image_open import PHOTO_FORMATS

if TYPE_CHECKING:
    from faceapp.engine.images import DecodedImage

_EXIF_IFD = 0x8769
_DATE_TAGS = (0x9003, 0x9004)  # DateTimeOriginal, DateTimeDigitized (Exif IFD)
_DATE_TIME_TAG = 0x0132  # DateTime (IFD0): when the file was last edited, a last resort
_EXIF_DATE = re.compile(r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def exif_date(im: Image.Image) -> str | None:
    """When the photo was taken per its EXIF ('YYYY-MM-DDTHH:MM:SS', camera local time).

    DateTimeOriginal, then DateTimeDigitized, then DateTime; blank or impossible
    values ('0000:00:00 00:00:00', month 13) count as absent.
    """
    try:
        exif = im.getexif()
        values = [exif.get_ifd(_EXIF_IFD).get(t) for t in _DATE_TAGS] + [exif.get(_DATE_TIME_TAG)]
    except Exception:
        return None
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        m = _EXIF_DATE.match(str(value or "").strip())
        if m is None:
            continue
        y, mo, d, h, mi, sec = map(int, m.groups())
        if 1800 < y < 2200 and 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and sec < 62:
            return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{min(sec, 59):02d}"
    return None


def file_time(mtime_ns: int) -> str:
    """A file's modification time in the same form (local time), the fallback date."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime_ns / 1e9))


def date_taken(path: Path, decoded: DecodedImage | None = None) -> str:
    """When a photo was taken: its EXIF date, else the file's modification time.

    With ``decoded`` the EXIF read at decode time is used; otherwise only the file's
    header is read (no pixels). Raises OSError when the file cannot be read at all.
    """
    taken = decoded.taken if decoded is not None else None
    if taken is None and decoded is None:
        try:
            with Image.open(path, formats=PHOTO_FORMATS) as im:
                taken = exif_date(im)
        except Exception:  # no header Pillow reads: fall back to the file time
            taken = None
    return taken or file_time(Path(path).stat().st_mtime_ns)
