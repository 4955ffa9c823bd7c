"""JPEG decoding on the GPU (nvJPEG through torchvision) for scans that run on CUDA.

On a GPU the networks take a few milliseconds per photo, so Pillow's decoding on the
CPU becomes the limit, all the more as a photo's crops need a sharper decode than
its detection copy (a second, finer decode in the model thread). Here the whole
photo is decoded once on the GPU and comes back to the CPU at full resolution; the
detection copy and the crops are then made from it exactly as from a full Pillow
decode (:func:`images.load_image` with ``full_resolution=True``), so the faces are
the same. Files nvJPEG cannot decode (other formats, CMYK, damaged JPEGs) go through
Pillow, which also gives the precise reason when a file is bad.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from faceapp.engine import image_modes, images
from faceapp.engine.images import DecodedImage, load_image

_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
# One decode at a time per process: nvJPEG's handle in torchvision is shared, and a
# 12 MP decode takes a few ms, so the lock costs little next to the CPU work after it.
_lock = threading.Lock()


def load_image_torch(path: Path, device: str = "cuda") -> DecodedImage:
    """:func:`images.load_image` (full resolution) with the JPEG decoded by torchvision on
    ``device`` (nvJPEG on CUDA; libjpeg-turbo on CPU, which the tests use)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    path = Path(path)
    if path.suffix.lower() not in _JPEG_SUFFIXES:
        return load_image(path, full_resolution=True)
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as head:  # header only: no pixels decoded
            usable = head.format == "JPEG" and head.mode in ("RGB", "L")
            usable = usable and head.width * head.height <= images.MAX_PIXELS
            orientation = image_modes.orientation_of(head)
            taken = images.exif_date(head)
        if not usable:
            return load_image(path, full_resolution=True)
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        with _lock:
            pixels = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
            array = pixels.permute(1, 2, 0).cpu().numpy()
    except (OSError, RuntimeError, ValueError, SyntaxError):
        return load_image(path, full_resolution=True)  # Pillow says what is wrong, or copes
    rgb = image_modes.orient(Image.fromarray(array), orientation)
    small, scale_small = images._detection_copy(rgb, 1.0, images.DETECT_MAX_SIDE)
    return DecodedImage(
        path=path,
        width=rgb.width,
        height=rgb.height,
        image=rgb,
        scale_image=1.0,
        small=small,
        scale_small=scale_small,
        format="JPEG",
        orientation=orientation,
        taken=taken,
    )


def loader(device: str) -> Callable[[Path], DecodedImage] | None:
    """The photo decoder a scan on ``device`` uses; None: Pillow's (the default)."""
    if torch.device(device).type == "cuda":
        return lambda path: load_image_torch(path, device)
    return None
