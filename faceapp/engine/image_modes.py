"""A decoded photo shown as a viewer would: upright, 8-bit RGB, whatever its pixel mode.

EXIF orientation, transparency (over white), CMYK (through its ICC profile), 16-bit,
32-bit and float greyscale all become the RGB image the networks and crops use.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from faceapp.engine.image_open import ImageError, short_reason

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


def orientation_of(im: Image.Image) -> int:
    """EXIF orientation 1-8; broken or missing EXIF means 'as stored' (1)."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def orient(im: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return im.transpose(method) if method is not None else im


def to_rgb(im: Image.Image) -> Image.Image:
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
        raise ImageError(f"unsupported image mode {mode} ({short_reason(exc)})") from None


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
