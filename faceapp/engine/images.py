"""Decode a photo safely and fast.

:func:`load_image` decodes one photo into a :class:`DecodedImage`: RGB, EXIF
orientation applied, a small copy for face detection and an image for cutting face
crops. Anything wrong with the file becomes an :class:`ImageError` whose text is a
reason a user can read ("the file is empty", "truncated or corrupt image data", ...),
so a scan can report it and carry on (:mod:`faceapp.engine.image_open`); any pixel
mode becomes upright RGB (:mod:`faceapp.engine.image_modes`). Finding the photos of a
folder is :mod:`faceapp.engine.photo_files`; their dates, :mod:`faceapp.engine.photo_dates`.

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

import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from faceapp.engine.image_modes import orient, orientation_of, to_rgb
from faceapp.engine.image_open import (
    JPEG_FORMATS,
    MAX_PIXELS,
    ImageError,
    check_jpeg_scans,
    load_pixels,
    open_file,
    open_image,
)
from faceapp.engine.photo_dates import exif_date

# Default longest side of the detection copy: MTCNN's cost grows with the pixel
# count, and at ~1000 px a face of 20 px (MTCNN's smallest) is 80 px of a 12 MP
# photo, smaller than anything worth recognising.
DETECT_MAX_SIDE = 1024
# JPEG draft may stop at a DCT scale whose long side is a little under
# ``detect_max_side`` (4000 px / 4 = 1000 < 1024): skipping the extra resize saves
# ~30 ms per 12 MP photo and changes the smallest detectable face by < 10 %.
_DRAFT_TOLERANCE = 0.9
_DRAFT_SCALES = (8, 4, 2, 1)


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
    with open_file(path) as fh:
        im = open_image(fh, max_pixels)
        with im:
            raw_w, raw_h = im.size
            fmt = im.format
            if fmt in JPEG_FORMATS:
                check_jpeg_scans(fh)
            k = 1
            if fmt in JPEG_FORMATS and not full_resolution:
                k = _draft_scale(max(raw_w, raw_h), detect_max_side)
                if k > 1:
                    im.draft("RGB", _draft_request(im.size, k))
            load_pixels(im)
            draft_k = _actual_scale((raw_w, raw_h), im.size, k)
            orientation = orientation_of(im)
            taken = exif_date(im)
            rgb = orient(to_rgb(im), orientation)
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
    with open_file(path) as fh:
        im = open_image(fh, MAX_PIXELS)
        with im:
            if im.size != raw_size or im.format not in JPEG_FORMATS:
                raise ImageError("the file changed while it was being read")
            check_jpeg_scans(fh)
            if k > 1:
                im.draft("RGB", _draft_request(im.size, k))
            load_pixels(im)
            got = _actual_scale(raw_size, im.size, k)
            return orient(to_rgb(im), orientation), float(got)
