"""Find photos in a folder and decode them safely and fast.

Two jobs, both shaped by what a real photo folder contains:

* :func:`discover` walks a folder tree and returns the photo files in a stable
  order. It skips hidden folders and files (``.thumbnails``, ``.git``, macOS
  ``._*`` resource forks), NAS/OS thumbnail junk folders, and the app's own
  files; it follows folder symlinks but never loops.
* :func:`load_image` decodes one photo into a :class:`DecodedImage`: RGB, EXIF
  orientation applied, a small copy for face detection and an image for cutting
  face crops. Anything wrong with the file becomes an :class:`ImageError` whose
  text is a reason a user can read ("the file is empty", "truncated or corrupt
  image data", ...), so a scan can report it and carry on.

Speed: a 12 MP JPEG costs 60-85 ms of CPU to decode in full, 15-50 ms at 1/4
scale (JPEG "draft" mode: the DCT is scaled while decoding; the range is smooth
to noisy content). Detection only needs ~1000 px, so JPEGs are decoded at the
largest draft scale that still gives ``detect_max_side``; crops are cut later
from a re-decode at the scale the faces need (:meth:`DecodedImage.crop_source`),
so photos without faces, or with large faces, never cost a full-resolution
decode. Callers that decode in worker threads and cut crops elsewhere can ask
for ``full_resolution=True`` to keep that re-decode out of the model thread.

Coordinates: everything the engine stores is in *display pixels of the full
photo* (after EXIF rotation). ``small`` and ``image`` are uniformly scaled
copies; ``scale_small``/``scale_image`` are display px per pixel of each, so
``display = pixel * scale`` on both axes.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pillow_heif
from PIL import Image, ImageFile

from faceapp.errors import FaceAppError

# HEIC/HEIF (iPhones) through pillow-heif; AVIF through Pillow's own plugin (Pillow >= 11.3
# wheels carry libavif). pillow-heif applies the file's rotation while decoding and then
# reports EXIF orientation 1, so HEIF photos come out upright like every other format.
pillow_heif.register_heif_opener()

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"}
)
# The app's own files (SQLite library + journals) never count as photos, even if
# someone names a library "x.jpg.sqlite" or keeps one inside the photo folder.
APP_FILE_SUFFIXES: tuple[str, ...] = (".sqlite", "-wal", "-shm", "-journal")
# Folders that only hold copies/thumbnails made by a NAS or an OS; scanning them
# would duplicate every face.
JUNK_DIRS: frozenset[str] = frozenset({"@eadir", "__macosx", "$recycle.bin"})

# Largest photo we agree to decode. 200 MP covers 150 MP medium-format cameras
# and phone panoramas; beyond that a file is far more likely a decompression bomb
# (a few KB that inflate to GBs) than a photo. Checked from the header, before
# any pixel memory is allocated. Pillow's own guard (2 x Image.MAX_IMAGE_PIXELS,
# ~179 MP unless the app raises it) applies too; the lower of the two wins and
# both give the same reason.
MAX_PIXELS = 200_000_000
# Default longest side of the detection copy: MTCNN's cost grows with the pixel
# count, and at ~1000 px a face of 20 px (MTCNN's smallest) is 80 px of a 12 MP
# photo, smaller than anything worth recognising.
DETECT_MAX_SIDE = 1024
# JPEG draft may stop at a DCT scale whose long side is a little under
# ``detect_max_side`` (4000 px / 4 = 1000 < 1024): skipping the extra resize saves
# ~30 ms per 12 MP photo and changes the smallest detectable face by < 10 %.
_DRAFT_TOLERANCE = 0.9
_DRAFT_SCALES = (8, 4, 2, 1)

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
_JPEG_FORMATS = ("JPEG", "MPO")
# A progressive JPEG may repeat scans without end: each one costs a pass over every
# block, so a 100 KB file of 1,000 near-empty scans takes ~20 s to decode and a few MB
# of them take an hour. libjpeg's standard progressive script uses 10 scans and
# mozjpeg's optimised ones about 20; more than this is a crafted file, not a photo.
MAX_JPEG_SCANS = 100

# EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112


class ImageError(FaceAppError):
    """A photo that cannot be used; ``str(err)`` is a short reason for the user."""

    exit_code = 2


# --------------------------------------------------------------------------- discovery


def is_image_path(path: Path) -> bool:
    """True for a visible, non-app file with a photo extension (any letter case)."""
    name = path.name
    if name.startswith("."):
        return False
    lower = name.lower()
    if lower.endswith(APP_FILE_SUFFIXES):
        return False
    return os.path.splitext(lower)[1] in IMAGE_EXTENSIONS


def discover(
    root: Path,
    on_error: Callable[[Path, str], None] | None = None,
) -> list[Path]:
    """All photo files under ``root``, recursively, sorted; paths start with ``root``.

    Hidden entries and junk folders are skipped. Folder symlinks are followed
    (people link albums in from other disks), but each real folder is walked
    once, where it is first reached in name order, so a link to a parent
    cannot loop. Unreadable folders and photo links whose target is gone are
    skipped and reported to ``on_error(path, reason)`` when given: one locked
    folder must not stop a scan of the rest.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    found: list[Path] = []
    seen: set[str] = set()
    stack: list[Path] = [root]
    while stack:
        folder = stack.pop()
        try:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if on_error is not None:
                on_error(folder, _os_reason(exc, "cannot read folder"))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = folder / name
            try:
                if entry.is_dir(follow_symlinks=True):
                    if name.lower() not in JUNK_DIRS:
                        subfolders.append(path)
                elif entry.is_file(follow_symlinks=True) and is_image_path(path):
                    found.append(path)
                elif on_error and entry.is_symlink() and is_image_path(path) and not path.exists():
                    on_error(path, f"broken link: {os.readlink(path)} does not exist")
            except OSError as exc:  # e.g. a symlink to a folder we may not stat
                if on_error is not None:
                    on_error(path, _os_reason(exc, "cannot read"))
        # Depth-first in name order, so which link "owns" a folder reachable twice
        # does not depend on the file system's listing order.
        stack.extend(reversed(subfolders))
    found.sort()
    return found


# --------------------------------------------------------------------------- decoding


@dataclass
class DecodedImage:
    """One decoded photo: a detection copy and a crop source, both upright RGB.

    ``width``/``height`` are the display size of the full photo. ``small`` has a
    long side <= ``detect_max_side`` (or is the photo itself when smaller).
    ``image`` is the best decode made so far (for a JPEG possibly a draft at
    1/2, 1/4 or 1/8 scale); :meth:`crop_source` returns one sharp enough for a
    given crop, decoding again at a finer scale only when needed.
    """

    path: Path
    width: int
    height: int
    image: Image.Image
    scale_image: float
    small: Image.Image
    scale_small: float
    format: str | None = None
    orientation: int = 1
    taken: str | None = None  # EXIF DateTimeOriginal as 'YYYY-MM-DDTHH:MM:SS', if any
    _redecode: bool = field(default=False, repr=False)
    _raw_size: tuple[int, int] = field(default=(0, 0), repr=False)

    def crop_source(self, max_scale: float) -> tuple[Image.Image, float]:
        """An RGB image with at most ``max_scale`` display px per pixel, and its scale.

        A JPEG decoded as a draft is decoded again at the coarsest DCT scale
        (1, 1/2, 1/4, 1/8) that meets ``max_scale`` and kept for later calls.
        Other formats are always held at full resolution. If the file cannot
        be read again (changed or deleted since), the current image is returned:
        a slightly softer crop beats losing the face.
        """
        if self.scale_image <= max_scale or not self._redecode:
            return self.image, self.scale_image
        k = next((s for s in _DRAFT_SCALES if s <= max_scale), 1)
        try:
            im, scale = _decode_jpeg_at(self.path, k, self._raw_size, self.orientation)
        except ImageError:
            return self.image, self.scale_image
        self.image, self.scale_image = im, scale
        if scale == 1:
            self._redecode = False
        return self.image, self.scale_image


def load_image(
    path: Path,
    detect_max_side: int = DETECT_MAX_SIDE,
    *,
    full_resolution: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> DecodedImage:
    """Decode ``path`` into a :class:`DecodedImage`, or raise :class:`ImageError`.

    Only the first frame of animated or multi-page files is used. Any pixel
    mode becomes 8-bit RGB (transparency over white; 16-bit and float images
    scaled to 0-255, not clipped). ``full_resolution=True`` decodes JPEGs in
    full right away (``image`` at scale 1), for callers that know they will
    need it and want that work done in the decoding thread.
    """
    path = Path(path)
    if detect_max_side < 1:
        raise ValueError("detect_max_side must be positive")
    with _open_file(path) as fh:
        im = _open(fh, max_pixels)
        with im:
            raw_w, raw_h = im.size
            fmt = im.format
            if fmt in _JPEG_FORMATS:
                _check_jpeg_scans(fh)
            k = 1
            if fmt in _JPEG_FORMATS and not full_resolution:
                k = _draft_scale(max(raw_w, raw_h), detect_max_side)
                if k > 1:
                    im.draft("RGB", _draft_request(im.size, k))
            _load(im)
            draft_k = _actual_scale((raw_w, raw_h), im.size, k)
            orientation = _orientation(im)
            taken = exif_date(im)
            rgb = _orient(_to_rgb(im), orientation)
    width, height = (raw_h, raw_w) if orientation in (5, 6, 7, 8) else (raw_w, raw_h)
    # A draft of ceil(W/k) px covers W display px: display = draft px * k, exactly.
    scale_image = float(draft_k)
    small, scale_small = _detection_copy(rgb, scale_image, detect_max_side)
    return DecodedImage(
        path=path,
        width=width,
        height=height,
        image=rgb,
        scale_image=scale_image,
        small=small,
        scale_small=scale_small,
        format=fmt,
        orientation=orientation,
        taken=taken,
        _redecode=draft_k > 1,
        _raw_size=(raw_w, raw_h),
    )


def _draft_scale(long_side: int, detect_max_side: int) -> int:
    """Coarsest DCT scale whose output still gives ~``detect_max_side`` px."""
    for k in _DRAFT_SCALES:
        if math.ceil(long_side / k) >= _DRAFT_TOLERANCE * detect_max_side:
            return k
    return 1


def _draft_request(size: tuple[int, int], k: int) -> tuple[int, int]:
    # Pillow picks the largest scale s in (8, 4, 2, 1) with s <= min(W // w, H // h).
    return (max(1, size[0] // k), max(1, size[1] // k))


def _actual_scale(raw: tuple[int, int], got: tuple[int, int], asked: int) -> int:
    """The DCT scale a decode really used (tiny images may get a smaller one than asked)."""
    for k in (asked, *reversed(_DRAFT_SCALES)):
        if (-(-raw[0] // k), -(-raw[1] // k)) == got:
            return k
    raise ImageError(f"decoder returned an unexpected size {got} for {raw[0]}x{raw[1]}")


def _detection_copy(rgb: Image.Image, scale: float, max_side: int) -> tuple[Image.Image, float]:
    """The detection copy of ``rgb`` (at ``scale`` display px per px) and its scale.

    A full-resolution decode is first box-reduced by the same integer factor a
    JPEG draft would have used (``Image.reduce``: ~15 ms for 12 MP, against
    ~80 ms for a direct antialiased resize), so both paths give alike copies.
    """
    r = _draft_scale(max(rgb.size), max_side)
    if r > 1:
        rgb = rgb.reduce(r)
        scale *= r
    small, factor = _shrink(rgb, max_side)
    return small, scale * factor


def _shrink(rgb: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """Downscale so the long side is ``max_side``; returns (image, source px per pixel).

    The output covers a box of exactly ``factor`` source px per pixel on both
    axes (the last partial pixel row/column is dropped), so coordinates map
    back by one multiplication.
    """
    w, h = rgb.size
    long_side = max(w, h)
    if long_side <= max_side:
        return rgb, 1.0
    factor = long_side / max_side
    sw = max(1, min(max_side, math.floor(w / factor + 1e-6)))
    sh = max(1, min(max_side, math.floor(h / factor + 1e-6)))
    box = (0.0, 0.0, min(w, sw * factor), min(h, sh * factor))
    small = rgb.resize((sw, sh), Image.Resampling.BILINEAR, box=box)
    return small, factor


def _decode_jpeg_at(
    path: Path, k: int, raw_size: tuple[int, int], orientation: int
) -> tuple[Image.Image, float]:
    """Decode a JPEG again at DCT scale 1/k (for crops)."""
    with _open_file(path) as fh:
        im = _open(fh, MAX_PIXELS)
        with im:
            if im.size != raw_size or im.format not in _JPEG_FORMATS:
                raise ImageError("the file changed while it was being read")
            _check_jpeg_scans(fh)
            if k > 1:
                im.draft("RGB", _draft_request(im.size, k))
            _load(im)
            got = _actual_scale(raw_size, im.size, k)
            return _orient(_to_rgb(im), orientation), float(got)


def _open_file(path: Path) -> BinaryIO:
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
        raise ImageError(_os_reason(exc, "cannot read the file")) from None
    try:
        size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        fh.close()
        raise ImageError(_os_reason(exc, "cannot read the file")) from None
    if size == 0:
        fh.close()
        raise ImageError("the file is empty (0 bytes)")
    return fh


def _check_jpeg_scans(fh: BinaryIO) -> None:
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
        raise ImageError(_os_reason(exc, "cannot read the file")) from None
    finally:
        fh.seek(pos)


def _open(fh: BinaryIO, max_pixels: int) -> Image.Image:
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
            raise ImageError(_os_reason(exc, "cannot read the file")) from None
        raise ImageError(f"corrupt image header ({_short(exc)})") from None
    except Exception as exc:  # Pillow plugins raise many types on malformed headers
        raise ImageError(f"corrupt image header ({_short(exc)})") from None
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


def _load(im: Image.Image) -> None:
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
        raise ImageError(f"corrupt image data ({_short(exc)})") from None
    except Exception as exc:  # Pillow decoders raise many types on fuzzed input
        raise ImageError(f"corrupt image data ({_short(exc)})") from None


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


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1-8; broken or missing EXIF means 'as stored' (1)."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(im: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return im.transpose(method) if method is not None else im


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB, preserving what a viewer would show."""
    mode = im.mode
    try:
        if mode == "RGB":
            return im
        if mode in ("L", "RGBX", "YCbCr", "HSV"):
            return im.convert("RGB")
        if mode == "1":
            return im.convert("L").convert("RGB")
        if mode == "P":
            if "transparency" in im.info:
                return _over_white(im.convert("RGBA"))
            return im.convert("RGB")
        if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
            return _over_white(im.convert("RGBA"))
        if mode == "CMYK":
            return _cmyk_to_rgb(im)
        if mode.startswith("I;16") or mode in ("I", "F"):
            return _high_depth_to_rgb(im)
        if mode == "LAB":
            from PIL import ImageCms

            lab = ImageCms.applyTransform(
                im,
                ImageCms.buildTransform(
                    ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
                ),
            )
            if lab is None:  # only an in-place transform returns None
                raise ImageError("unsupported image mode LAB (colour conversion failed)")
            return lab
        return im.convert("RGB")
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"unsupported image mode {mode} ({_short(exc)})") from None


def _over_white(rgba: Image.Image) -> Image.Image:
    """Flatten transparency onto white, as most viewers and browsers show it."""
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """CMYK via its embedded ICC profile when there is one (print files), else naive."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(
                im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if rgb is not None:  # only an in-place conversion returns None
                return rgb
        except Exception:
            pass
    return im.convert("RGB")


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit int and float greyscale -> 8-bit, scaled by the value range.

    16-bit data maps 0..65535 to 0..255 (x / 257, rounded). 32-bit int data in
    0..255 or 0..65535 is taken as 8- or 16-bit; float data in 0..1 as
    normalised. Anything else is stretched min..max, so a medical or scientific
    image still shows its content instead of saturating.
    """
    a = np.asarray(im)
    out: np.ndarray
    if a.dtype.kind == "u" and a.dtype.itemsize == 2:
        out = (a.astype(np.uint32) * 255 + 32767) // 65535
    else:
        a = a.astype(np.float64)
        finite = np.isfinite(a)
        if not finite.any():
            raise ImageError("image has no finite pixel values")
        a = np.where(finite, a, 0.0)
        lo, hi = float(a.min()), float(a.max())
        if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
            out = a * 255.0
        elif lo >= 0 and hi <= 255:
            out = a
        elif im.mode == "I" and lo >= 0 and hi <= 65535:
            out = a / 257.0
        else:
            out = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        out = np.rint(out)
    grey = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "L")
    return grey.convert("RGB")


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


def _os_reason(exc: OSError, what: str) -> str:
    if isinstance(exc, PermissionError):
        return f"{what}: permission denied"
    return f"{what}: {exc.strerror or exc}"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
