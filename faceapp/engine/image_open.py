"""Opening an untrusted image file: every way it can fail as one reason a user can read.

A photo folder is untrusted input: files may be empty, truncated, pipes, folders with
a photo's name, decompression bombs, crafted JPEGs that stall the decoder, or formats
Pillow would hand to a risky plugin. :func:`open_file`, :func:`open_image` and
:func:`load_pixels` refuse each of them with an :class:`ImageError` before or while
decoding, so a scan reports the file and carries on.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

import pillow_heif
from PIL import Image, ImageFile

from faceapp.errors import FaceAppError

# HEIC/HEIF (iPhones) through pillow-heif; AVIF through Pillow's own plugin (Pillow >= 11.3
# wheels carry libavif). pillow-heif applies the file's rotation while decoding and then
# reports EXIF orientation 1, so HEIF photos come out upright like every other format.
pillow_heif.register_heif_opener()

# Largest photo we agree to decode. 200 MP covers 150 MP medium-format cameras
# and phone panoramas; beyond that a file is far more likely a decompression bomb
# (a few KB that inflate to GBs) than a photo. Checked from the header, before
# any pixel memory is allocated. Pillow's own guard (2 x Image.MAX_IMAGE_PIXELS,
# ~179 MP unless the app raises it) applies too; the lower of the two wins and
# both give the same reason.
MAX_PIXELS = 200_000_000

# The decoders a photo may reach, whatever its extension says. Pillow sniffs the
# content and would otherwise hand a file called "x.jpg" to any of its ~40 plugins,
# including EPS (which runs Ghostscript on the file) and rarely used decoders with a
# history of crashes; a photo folder is untrusted input, so only photo formats (and
# GIF/AVIF, which web downloads often carry under a .jpg name) are decoded. Camera
# MPO files open through the JPEG plugin.
PHOTO_FORMATS: tuple[str, ...] = (
    "JPEG",
    "PNG",
    "WEBP",
    "TIFF",
    "BMP",
    "DIB",
    "GIF",
    "AVIF",
    "HEIF",
)
# Pillow reports a multi-picture JPEG as "MPO"; it decodes (and drafts) as a JPEG.
JPEG_FORMATS = ("JPEG", "MPO")
# A progressive JPEG may repeat scans without end: each one costs a pass over every
# block, so a 100 KB file of 1,000 near-empty scans takes ~20 s to decode and a few MB
# of them take an hour. libjpeg's standard progressive script uses 10 scans and
# mozjpeg's optimised ones about 20; more than this is a crafted file, not a photo.
MAX_JPEG_SCANS = 100


class ImageError(FaceAppError):
    """A photo that cannot be used; ``str(err)`` is a short reason for the user."""

    exit_code = 2


def open_file(path: Path) -> BinaryIO:
    """Open for reading with a user-facing reason for every way that can fail.

    Opened without blocking, so that a FIFO (whose open waits for a writer) or a
    device is refused at once instead of hanging or reading without end.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            os.close(fd)
            raise
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            raise ImageError("not a regular file (a pipe, socket or device)")
        fh = os.fdopen(fd, "rb")
    except IsADirectoryError:
        raise ImageError("is a folder, not a file") from None
    except PermissionError:
        raise ImageError("permission denied (cannot read the file)") from None
    except FileNotFoundError:
        raise ImageError("file not found (deleted or moved?)") from None
    except OSError as exc:
        raise ImageError(os_reason(exc, "cannot read the file")) from None
    try:
        size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        fh.close()
        raise ImageError(os_reason(exc, "cannot read the file")) from None
    if size == 0:
        fh.close()
        raise ImageError("the file is empty (0 bytes)")
    return fh


def check_jpeg_scans(fh: BinaryIO) -> None:
    """Refuse a JPEG with more than MAX_JPEG_SCANS scans before decoding any of them.

    Entropy-coded data escapes every 0xFF byte, so each ``FF DA`` in the file is a real
    start-of-scan marker: counting them is exact and costs one read of the file.
    """
    pos = fh.tell()
    scans, tail = 0, b""
    try:
        fh.seek(0)
        while chunk := fh.read(1 << 20):
            scans += (tail + chunk).count(b"\xff\xda")
            tail = chunk[-1:]
            if scans > MAX_JPEG_SCANS:
                raise ImageError(
                    f"JPEG with more than {MAX_JPEG_SCANS} scans; not decoded, it could"
                    " be crafted to stall the decoder"
                )
    except OSError as exc:
        raise ImageError(os_reason(exc, "cannot read the file")) from None
    finally:
        fh.seek(pos)


def open_image(fh: BinaryIO, max_pixels: int) -> Image.Image:
    """Identify the file and check its declared size before any pixel is decoded."""
    try:
        im = Image.open(fh, formats=PHOTO_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (2 x Image.MAX_IMAGE_PIXELS, ~179 MP by default) fired first.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else 0
        raise ImageError(_too_large(pixels, None, _pixel_limit(max_pixels))) from None
    except Image.UnidentifiedImageError:
        raise ImageError(_not_an_image_reason(fh)) from None
    except OSError as exc:
        if exc.errno is not None:  # a real I/O error (disk, network share)
            raise ImageError(os_reason(exc, "cannot read the file")) from None
        raise ImageError(f"corrupt image header ({short_reason(exc)})") from None
    except Exception as exc:  # Pillow plugins raise many types on malformed headers
        raise ImageError(f"corrupt image header ({short_reason(exc)})") from None
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise ImageError(f"corrupt image header (size {w}x{h})")
    limit = _pixel_limit(max_pixels)
    if w * h > limit:
        im.close()
        raise ImageError(_too_large(w * h, (w, h), limit))
    return im


def _pixel_limit(max_pixels: int) -> int:
    """Our limit, or Pillow's decompression-bomb limit if that is lower."""
    pillow = Image.MAX_IMAGE_PIXELS
    return min(max_pixels, 2 * pillow) if pillow else max_pixels


def _too_large(pixels: int, size: tuple[int, int] | None, limit: int) -> str:
    dims = f"{size[0]}x{size[1]}, " if size else ""
    return (
        f"image too large: {dims}{pixels / 1e6:.0f} MP (limit {limit / 1e6:.0f} MP);"
        " not decoded, it could be a decompression bomb"
    )


def load_pixels(im: Image.Image) -> None:
    """Decode all pixel data; anything short of a complete decode is an error."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped the global: never accept half images
        raise ImageError("internal: PIL.ImageFile.LOAD_TRUNCATED_IMAGES must be False")
    try:
        im.load()
    except MemoryError:
        raise ImageError("not enough memory to decode this image") from None
    except Image.DecompressionBombError:
        raise ImageError("image too large to decode safely") from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg or "premature" in msg.lower():
            raise ImageError("truncated image data (the file is incomplete)") from None
        raise ImageError(f"corrupt image data ({short_reason(exc)})") from None
    except Exception as exc:  # Pillow decoders raise many types on fuzzed input
        raise ImageError(f"corrupt image data ({short_reason(exc)})") from None


def _not_an_image_reason(fh: BinaryIO) -> str:
    try:
        fh.seek(0)
        head = fh.read(512)
    except OSError:
        head = b""
    if head and all(b in b"\t\n\r\f" or 32 <= b < 127 or b >= 128 for b in head):
        try:
            head.decode("utf-8")
            return "not an image (the file contains text)"
        except UnicodeDecodeError:
            pass
    return "not an image, or a format this app cannot read"


def os_reason(exc: OSError, what: str) -> str:
    if isinstance(exc, PermissionError):
        return f"{what}: permission denied"
    return f"{what}: {exc.strerror or exc}"


def short_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
