"""The second look: faces smaller than the detection copy can show, searched at high
resolution only where the first pass saw something face-like.

MTCNN on the ~1000 px detection copy finds faces of at least ``min_face_size`` copy
px: ~80 display px on a 12 MP photo, 20 on a photo of 1000 px. Running the whole
cascade on a finer copy would find smaller faces at 3-5x the detection time (PNet's
cost grows with the pixels). But PNet's first pyramid level, which the first pass
runs anyway, already answers at faces of half to a third of its window: on the
small-faces album (bench/small_faces.py) every face of 40-80 display px had a PNet
face probability over 0.5 in its box, while under 1 % of a busy photo's area did.
So the second look takes the cells of that level over ``threshold`` (those on or
around a face already found excepted), grows them by the smallest face sought, and
runs the cascade only on those regions, packed side by side on one sheet (one
cascade call per photo), cut from a finer decode of the photo (JPEG draft 1/2 for a
12 MP photo) and only at the pyramid levels the first pass left out (faces from
``smallest`` px, or the first pass's smallest face / ``ratio``, up to the first
pass's smallest). Measured (bench/small_faces.py, 12 MP group photos): recall on
faces of 40-60 px 0.987 at threshold 0.5 (0.934 at 0.8), the 12 MP scan 8-13 %
slower (bench/throughput.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage

from faceapp.engine.boxes import iou
from faceapp.engine.images import DecodedImage

if TYPE_CHECKING:
    from faceapp.engine.detect import Detector, FaceBox

# the smallest face side MTCNN's 12 px window is run at, in px of the image searched:
# the fine decode is the coarsest one giving faces of the smallest size at least this
FINE_FACE_PX = 16
# PNet answers on the hair, ears and shoulders of a face found already: cells this far
# around a found face (share of its size, each side) are not looked at again
AROUND = 0.25
# the regions are searched side by side on one sheet of this width, this far apart
SHEET_WIDTH = 1024
GAP = 16


@dataclass(frozen=True)
class SecondLook:
    """Where and how finely to look again (display px of the photo)."""

    threshold: float = 0.5  # PNet face probability of a first-level cell worth a look
    ratio: float = 2.5  # look for faces down to the first pass's smallest / ratio ...
    smallest: float = 12.0  # ... but no smaller than this (display px)

    def find(
        self,
        detector: Detector,
        decoded: DecodedImage,
        level: tuple[float, np.ndarray],
        found: list[FaceBox],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Faces under the first pass's smallest size: (boxes [n, 4], probs [n],
        landmarks [n, 5, 2]) in display px, each over the detector's threshold and
        none overlapping a face in ``found``."""
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2)))
        coarse = detector.min_face_size * decoded.scale_small  # display px
        fine = max(self.smallest, coarse / self.ratio)
        if fine >= 0.8 * coarse:
            return empty
        regions = self._regions(level, decoded, found, fine)
        if not regions:
            return empty
        img, s = decoded.crop_source(max(1.0, fine / FINE_FACE_PX))
        boxes_px = [
            (int(x1 / s), int(y1 / s), math.ceil(x2 / s), math.ceil(y2 / s))
            for x1, y1, x2, y2 in regions
        ]
        sheet, at = _pack([img.crop(b) for b in boxes_px])
        scales = _scales(fine / s, coarse / s, detector.factor)
        scales = [sc for sc in scales if min(sheet.size) * sc >= 12]
        if not scales:
            return empty
        (boxes, probs, points), *_ = detector.detect_raw([sheet], scales=scales)
        keep_p = probs >= detector.threshold
        boxes, probs, points = boxes[keep_p], probs[keep_p], points[keep_p]
        # each face back from its place on the sheet to its region of the photo
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        shift = np.full((len(boxes), 2), np.nan, np.float32)  # NaN: in a gap, dropped
        for (x0, y0, w, h), b in zip(at, boxes_px, strict=True):
            inside = (cx >= x0) & (cx < x0 + w) & (cy >= y0) & (cy < y0 + h)
            shift[inside] = (b[0] - x0, b[1] - y0)
        placed = ~np.isnan(shift[:, 0])
        boxes, probs, points, shift = boxes[placed], probs[placed], points[placed], shift[placed]
        boxes = (boxes.reshape(-1, 2, 2) + shift[:, None]).reshape(-1, 4) * s
        points = (points + shift[:, None]) * s
        keep: list[int] = []
        for i in np.argsort(-probs):
            b = boxes[i]
            if max(b[2] - b[0], b[3] - b[1]) < fine:
                continue
            if any(iou(b, f.box) > 0.2 for f in found) or any(iou(b, boxes[j]) > 0.3 for j in keep):
                continue
            keep.append(int(i))
        return boxes[keep], probs[keep], points[keep]

    def _regions(
        self,
        level: tuple[float, np.ndarray],
        decoded: DecodedImage,
        found: list[FaceBox],
        margin: float,
    ) -> list[tuple[float, float, float, float]]:
        """Display-px regions around the first-level cells over the threshold, with
        ``margin`` display px on each side of a cell's window."""
        scale, prob = level
        px = decoded.scale_small / scale  # display px per pixel of the level
        hot = prob > self.threshold
        if not hot.any():
            return []
        ii, jj = np.nonzero(hot)
        cx, cy = (2 * jj + 6) * px, (2 * ii + 6) * px  # window centres, display px
        for f in found:  # cells on or around a face found already are explained by it
            x1, y1, x2, y2 = f.box
            gx, gy = AROUND * (x2 - x1), AROUND * (y2 - y1)
            inside = (cx >= x1 - gx) & (cx <= x2 + gx) & (cy >= y1 - gy) & (cy <= y2 + gy)
            hot[ii[inside], jj[inside]] = False
        if not hot.any():
            return []
        grow = max(1, math.ceil(margin / (2 * px)))
        hot = ndimage.binary_dilation(hot, np.ones((2 * grow + 1,) * 2, bool))
        labels, _ = ndimage.label(hot)
        regions = []
        for sl in ndimage.find_objects(labels):
            y0, y1 = sl[0].start, sl[0].stop
            x0, x1 = sl[1].start, sl[1].stop
            regions.append(
                (
                    max(0.0, 2 * x0 * px),
                    max(0.0, 2 * y0 * px),
                    min(float(decoded.width), (2 * (x1 - 1) + 12) * px),
                    min(float(decoded.height), (2 * (y1 - 1) + 12) * px),
                )
            )
        return regions


def _pack(tiles: list[Image.Image]) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """The regions side by side on one grey sheet (rows, tallest first, ``GAP`` px
    apart), so that one cascade call searches them all: (sheet, (x, y, w, h) of each)."""
    order = sorted(range(len(tiles)), key=lambda i: -tiles[i].height)
    in_a_row = sum(t.width + GAP for t in tiles) + GAP  # no wider than all in one row
    width = max(min(SHEET_WIDTH, in_a_row), max(t.width for t in tiles) + 2 * GAP)
    at: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * len(tiles)
    x, y, row = GAP, GAP, 0
    for i in order:
        w, h = tiles[i].size
        if x + w + GAP > width:
            x, y, row = GAP, y + row + GAP, 0
        at[i] = (x, y, w, h)
        x, row = x + w + GAP, max(row, h)
    sheet = Image.new("RGB", (width, y + row + GAP), (128, 128, 128))
    for t, (x, y, _, _) in zip(tiles, at, strict=True):
        sheet.paste(t, (x, y))
    return sheet, at


def _scales(smallest: float, largest: float, factor: float) -> list[float]:
    """Pyramid scales for faces of ``smallest`` to ~``largest`` px (MTCNN's 12 px window)."""
    scales = [12.0 / max(smallest, 12.0)]
    while 12.0 / scales[-1] < largest:  # up to one level past the largest: faces at the
        scales.append(scales[-1] * factor)  # seam are found by both passes, kept once
    return scales


DEFAULT = SecondLook()
