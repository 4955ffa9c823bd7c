"""Find faces (MTCNN) and cut the 160x160 crops the embedder reads.

Detection runs facenet-pytorch's MTCNN networks (PNet/RNet/ONet, its shipped
weights) on the small detection copy of each photo and maps boxes and
landmarks back to display pixels of the full photo. The three-stage cascade is
facenet-pytorch's ``detect_face`` step for step, and finds bit-for-bit the same
boxes, probabilities and landmarks (tests/engine/test_detect.py checks), but about
1.7-2x faster on CPU:

* the image pyramid and the candidate patches for RNet/ONet are area-resampled
  from one integral image of the photo (exact integer window sums, divided as
  PyTorch's ``interpolate(mode="area")`` divides) instead of one adaptive
  pooling call per pyramid level and per candidate (~200 per 12 MP photo);
* the networks run in channels-last memory layout on CPU, where PyTorch's max
  pooling is ~4x faster than in the default layout.

Precision, layout and threads follow the process's
:class:`~faceapp.engine.inference.InferencePlan` (fp32 on CPU: see there).

On CUDA the original torch resampling is used.

Crops follow facenet-pytorch ``extract_face(img, box, image_size=160,
margin=32)`` exactly: the box grows by ``margin * box_size / (160 - margin)``,
is clipped to the photo and truncated to integers, and the region is resized to
160x160 with Pillow BILINEAR. The published LFW figures of the FaceNet weights
in use were made with precisely these crops, so any deviation costs accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
from facenet_pytorch.models.utils.detect_face import (
    batched_nms,
    batched_nms_numpy,
    bbreg,
    fixed_batch_process,
    generateBoundingBox,
    imresample,
    pad,
    rerec,
)
from PIL import Image

from faceapp.engine import inference
from faceapp.engine import second_look as second_look_mod
from faceapp.engine.images import DecodedImage

CROP_SIZE = 160
CROP_MARGIN = 32
# The source region of a crop must have at least this many pixels per crop
# pixel before a reduced (draft) decode is used instead of the full photo.
# Pillow's BILINEAR resize is antialiased, so the crop hardly depends on the
# source resolution once it is above the crop's: on 12 MP test photos, crops
# from a draft decode differed from full-resolution ones by a mean 0.3 grey
# levels at 1.1x, 0.2 at 2.5x (1-3 levels below 0.7x, 2-8 below 0.35x).
CROP_OVERSAMPLE = 1.5

# Defaults, and why:
# * min_face_size=20 (px of the detection copy): MTCNN's own default, used for
#   the reference LFW figures. On a 12 MP photo detected at ~1000 px it means
#   faces of >= ~80 display px; the second look (second_look.py) finds the
#   smaller ones, down to 80 / 2.5 = 32 px (bench/small_faces.py: recall 0.99
#   on faces of 40-60 px, where this pass alone finds none).
# * threshold=0.9 (final ONet probability): MTCNN's stage thresholds
#   (0.6, 0.7, 0.7) let through ears, necks, blurred fragments and textures at
#   0.7-0.9. On 2,000 random LFW photos every centre face scored > 0.9 (3 below
#   0.99), while of the other detections 60 of 359 fell in 0.7-0.9, nearly all
#   of them such fragments. So 0.9 drops most false faces and almost no real
#   ones; it is also facenet-pytorch's own selection default.
# * thresholds=(0.6, 0.7, 0.7), factor=0.709: facenet-pytorch defaults (the
#   reference figures used them).
MIN_FACE_SIZE = 20
PROB_THRESHOLD = 0.9
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709


@dataclass
class FaceBox:
    """One detected face, in display pixels of the full photo."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    landmarks: np.ndarray  # float32 [5, 2]: eyes, nose, mouth corners (x, y)
    prob: float

    @property
    def size(self) -> float:
        """Mean side length of the box (display px)."""
        return ((self.box[2] - self.box[0]) + (self.box[3] - self.box[1])) / 2


class Detector:
    """MTCNN face detector with crop extraction; one per thread.

    ``plan``: precision, layout and threads (default: :func:`inference.choose`);
    ``threads``: torch intra-op threads on CPU instead of the plan's (global to the
    process), ``0`` = leave torch's setting alone.
    ``batch_size`` / ``batch_pixels``: the most photos, and detection-copy
    pixels, per network pass; only same-size copies are batched. On CPU a batch
    of ~0.6 MP is fastest (8 LFW-size images: ~25 % faster than one by one; a
    1000 px photo: alone, as larger batches fall out of cache); on CUDA large
    batches are the main win.
    """

    def __init__(
        self,
        device: str = "cpu",
        min_face_size: int = MIN_FACE_SIZE,
        threshold: float = PROB_THRESHOLD,
        *,
        thresholds: Sequence[float] = STAGE_THRESHOLDS,
        factor: float = PYRAMID_FACTOR,
        batch_size: int | None = None,
        batch_pixels: int | None = None,
        threads: int | None = None,
        plan: inference.InferencePlan | None = None,
        second_look: second_look_mod.SecondLook | None = second_look_mod.DEFAULT,
    ) -> None:
        plan = plan or inference.choose(str(torch.device(device)))
        self.plan = plan if threads is None else inference.with_threads(plan, threads)
        self.device = torch.device(self.plan.device)
        self.cpu = self.device.type == "cpu"
        # Integral-image resampling pays off on CPU; on CUDA torch's kernels are fast.
        self.use_integral = self.cpu
        self.min_face_size = int(min_face_size)
        self.threshold = float(threshold)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.second_look = second_look  # None: faces under min_face_size stay unseen
        self.batch_size = batch_size or (16 if self.cpu else 64)
        self.batch_pixels = batch_pixels or (600_000 if self.cpu else 64_000_000)
        self.plan.apply_threads()
        self.pnet, self.rnet, self.onet = (
            self.plan.prepare(net().requires_grad_(False)) for net in (PNet, RNet, ONet)
        )

    def _run(self, net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One network pass at the plan's precision; outputs in float32 for the box maths."""
        with self.plan.autocast(self.plan.detect_precision):
            return tuple(t.float() for t in net(x))

    # ------------------------------------------------------------------ detection

    def detect(self, images: Sequence[DecodedImage]) -> list[list[FaceBox]]:
        """Faces of each photo (same order), highest probability first.

        Runs on each photo's ``small`` copy; photos whose copies have the same
        size share network passes. Then the second look (:mod:`second_look`)
        searches a finer decode for smaller faces where the first pyramid level
        saw something face-like.
        """
        results: list[list[FaceBox]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, d in enumerate(images):
            groups.setdefault(d.small.size, []).append(i)
        for size, idx in groups.items():
            per = max(1, min(self.batch_size, self.batch_pixels // (size[0] * size[1])))
            for start in range(0, len(idx), per):
                chunk = idx[start : start + per]
                maps: list[tuple[float, np.ndarray]] = []
                raw = self.detect_raw([images[i].small for i in chunk], first_level=maps)
                for k, (i, (boxes, probs, points)) in enumerate(zip(chunk, raw, strict=True)):
                    results[i] = self._to_faces(boxes, probs, points, images[i])
                    if self.second_look is not None and maps:
                        level = (maps[0][0], maps[0][1][k])
                        more = self.second_look.find(self, images[i], level, results[i])
                        results[i] += [
                            FaceBox(_float_box(b), pts.astype(np.float32), float(p))
                            for b, p, pts in zip(*more, strict=True)
                        ]
                        results[i].sort(key=lambda f: -f.prob)
        return results

    def detect_raw(
        self,
        smalls: Sequence[Image.Image],
        *,
        scales: Sequence[float] | None = None,
        first_level: list | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """MTCNN on same-size RGB images: per image (boxes[n,4], probs[n], points[n,5,2]).

        Coordinates are in pixels of the given images; nothing is filtered
        beyond MTCNN's stage thresholds. ``scales``: the pyramid levels to run
        (default: from ``min_face_size`` down). ``first_level``: a list that
        receives (scale, PNet face probability [N, h, w]) of the first level.
        """
        if not smalls:
            return []
        size = smalls[0].size
        if any(im.size != size for im in smalls):
            raise ValueError("detect_raw needs images of one size")
        with torch.inference_mode():
            boxes, points, inds = self._cascade(smalls, scales, first_level)
        out = []
        for b in range(len(smalls)):
            sel = inds == b
            out.append(
                (
                    boxes[sel, :4].astype(np.float32),
                    boxes[sel, 4].astype(np.float32),
                    points[sel].astype(np.float32),
                )
            )
        return out

    def _to_faces(
        self, boxes: np.ndarray, probs: np.ndarray, points: np.ndarray, d: DecodedImage
    ) -> list[FaceBox]:
        faces = []
        s = d.scale_small
        for box, prob, pts in zip(boxes, probs, points, strict=True):
            if prob < self.threshold:
                continue
            if max(box[2] - box[0], box[3] - box[1]) < self.min_face_size:
                continue
            x1, y1, x2, y2 = (float(v) * s for v in box)
            faces.append(
                FaceBox(
                    box=(x1, y1, x2, y2),
                    landmarks=(pts * s).astype(np.float32),
                    prob=float(prob),
                )
            )
        faces.sort(key=lambda f: -f.prob)
        return faces

    def _pyramid_scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scales = []
        scale = m
        while minl >= 12:
            scales.append(scale)
            scale *= self.factor
            minl *= self.factor
        return scales

    def _pyramid(
        self,
        integral: np.ndarray | None,
        imgs: torch.Tensor | None,
        h: int,
        w: int,
        scales: Sequence[float] | None = None,
    ):
        """Yield (scale, level) for each pyramid scale; levels are (N,3,h,w) float, normalised.

        On CPU the area resampling is computed from the integral image, which
        gives bit-for-bit the values of ``interpolate(mode="area")`` (window sums
        of 8-bit pixels are exact integers; the average is ``sum / kh / kw`` in
        float32 as in PyTorch's kernel) at a fraction of the cost.
        """
        for scale in self._pyramid_scales(h, w) if scales is None else scales:
            hs, ws = int(h * scale + 1), int(w * scale + 1)
            if integral is None:
                level = imresample(imgs, (hs, ws))
            else:
                h0, h1, kh = _windows(h, hs)
                w0, w1, kw = _windows(w, ws)
                band = np.take(integral, h1, axis=2) - np.take(integral, h0, axis=2)
                sums = np.take(band, w1, axis=3) - np.take(band, w0, axis=3)
                level = torch.from_numpy(sums.astype(np.float32) / kh[:, None] / kw[None, :])
            yield scale, self.plan.layout((level - 127.5) * 0.0078125)

    def _cascade(self, smalls: Sequence[Image.Image], scales=None, first_level=None):
        """facenet-pytorch ``detect_face``, stage for stage (see module docstring)."""
        device = self.device
        arr = np.stack([np.asarray(im if im.mode == "RGB" else im.convert("RGB")) for im in smalls])
        h, w = arr.shape[1:3]
        if self.use_integral:
            imgs, integral = None, _integral_image(arr)
        else:
            imgs = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float()
            integral = None
        t_p, t_r, t_o = self.thresholds

        # Stage 1: PNet over the pyramid.
        boxes_l, inds_l, picks_l = [], [], []
        offset = 0
        for scale, im_data in self._pyramid(integral, imgs, h, w, scales):
            reg, probs = self._run(self.pnet, im_data)
            if first_level is not None and not first_level:
                first_level.append((scale, probs[:, 1].cpu().numpy()))
            boxes_s, inds_s = generateBoundingBox(reg, probs[:, 1], scale, t_p)
            boxes_l.append(boxes_s)
            inds_l.append(inds_s)
            pick = batched_nms(boxes_s[:, :4], boxes_s[:, 4], inds_s, 0.5)
            picks_l.append(pick + offset)
            offset += boxes_s.shape[0]
        empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, int))
        if not boxes_l:
            return empty
        boxes = torch.cat(boxes_l)[torch.cat(picks_l)]
        image_inds = torch.cat(inds_l)[torch.cat(picks_l)]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds = boxes[pick], image_inds[pick]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        qq1 = boxes[:, 0] + boxes[:, 5] * regw
        qq2 = boxes[:, 1] + boxes[:, 6] * regh
        qq3 = boxes[:, 2] + boxes[:, 7] * regw
        qq4 = boxes[:, 3] + boxes[:, 8] * regh
        boxes = torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0)
        boxes = rerec(boxes)

        # Stage 2: RNet on 24x24 crops of the candidates.
        if len(boxes) == 0:
            return empty
        im_data, keep = self._patches(imgs, integral, boxes, image_inds, w, h, 24)
        boxes, image_inds = boxes[keep], image_inds[keep]
        if len(boxes) == 0:
            return empty
        out = fixed_batch_process(im_data, lambda x: self._run(self.rnet, x))
        score = out[1][:, 1]
        ipass = score > t_r
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out[0][ipass]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = bbreg(boxes, mv)
        boxes = rerec(boxes)

        # Stage 3: ONet on 48x48 crops: final boxes, probabilities, landmarks.
        if len(boxes) == 0:
            return empty
        im_data, keep = self._patches(imgs, integral, boxes, image_inds, w, h, 48)
        boxes, image_inds = boxes[keep], image_inds[keep]
        if len(boxes) == 0:
            return empty
        out = fixed_batch_process(im_data, lambda x: self._run(self.onet, x))
        out0 = out[0].permute(1, 0)
        points = out[1].permute(1, 0)
        score = out[2].permute(1, 0)[1, :]
        ipass = score > t_o
        points = points[:, ipass]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = bbreg(boxes, mv)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]
        return boxes.cpu().numpy(), points.cpu().numpy(), image_inds.cpu().numpy()

    def _patches(self, imgs, integral, boxes, image_inds, w, h, side):
        """Candidate regions area-resampled to side x side (as detect_face); which were valid."""
        y, ey, x, ex = pad(boxes, w, h)
        valid = (ey > y - 1) & (ex > x - 1)
        keep = torch.as_tensor(np.flatnonzero(valid), dtype=torch.long, device=boxes.device)
        if not valid.any():
            return None, keep
        if integral is None:
            patches = []
            for k in np.flatnonzero(valid):
                img_k = imgs[image_inds[k], :, (y[k] - 1) : ey[k], (x[k] - 1) : ex[k]]
                patches.append(imresample(img_k.unsqueeze(0), (side, side)))
            data = torch.cat(patches)
        else:
            # All candidates at once from the integral image (bit-exact, see _pyramid),
            # one flat gather per corner: ~3x faster than indexing the 4-d tensor.
            _, chans, h1p, w1p = integral.shape
            plane = h1p * w1p
            y0 = y[valid].astype(np.int64) - 1
            x0 = x[valid].astype(np.int64) - 1
            hh = ey[valid].astype(np.int64) - y0
            ww = ex[valid].astype(np.int64) - x0
            i = np.arange(side)
            r0 = y0[:, None] + (i * hh[:, None]) // side
            r1 = y0[:, None] - ((-(i + 1) * hh[:, None]) // side)
            c0 = x0[:, None] + (i * ww[:, None]) // side
            c1 = x0[:, None] - ((-(i + 1) * ww[:, None]) // side)
            n = image_inds[keep].cpu().numpy().astype(np.int64)
            base = (n * chans * plane)[:, None, None, None] + (np.arange(chans) * plane)[
                None, :, None, None
            ]
            top = base + (r0 * w1p)[:, None, :, None]
            bottom = base + (r1 * w1p)[:, None, :, None]
            left, right = c0[:, None, None, :], c1[:, None, None, :]
            flat = integral.reshape(-1)
            sums = flat[bottom + right] - flat[top + right] - flat[bottom + left] + flat[top + left]
            kh = (r1 - r0).astype(np.float32)[:, None, :, None]
            kw = (c1 - c0).astype(np.float32)[:, None, None, :]
            data = torch.from_numpy(sums.astype(np.float32) / kh / kw)
        return self.plan.layout((data - 127.5) * 0.0078125), keep

    # ---------------------------------------------------------------------- crops

    def crops(
        self,
        decoded: DecodedImage,
        faces: Sequence[FaceBox],
        image_size: int = CROP_SIZE,
        margin: int = CROP_MARGIN,
    ) -> np.ndarray:
        """uint8 [n, image_size, image_size, 3] crops, as facenet-pytorch ``extract_face``.

        Cut from the coarsest decode of the photo that still has
        ``CROP_OVERSAMPLE`` source pixels per crop pixel for the smallest face
        (JPEGs may be decoded again here at a finer draft scale, once per photo).
        """
        out = np.zeros((len(faces), image_size, image_size, 3), dtype=np.uint8)
        if not faces:
            return out
        regions = [
            crop_region(f.box, decoded.width, decoded.height, image_size, margin) for f in faces
        ]
        smallest = min(min(r[2] - r[0], r[3] - r[1]) for r in regions)
        img, scale = decoded.crop_source(max(1.0, smallest / (CROP_OVERSAMPLE * image_size)))
        for i, r in enumerate(regions):
            out[i] = np.asarray(cut_crop(img, scale, r, image_size))
        return out


def _float_box(b: np.ndarray) -> tuple[float, float, float, float]:
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def _integral_image(arr: np.ndarray) -> np.ndarray:
    """Summed-area table (N, 3, H+1, W+1) of uint8 images (N, H, W, 3), exact integers."""
    n, h, w, c = arr.shape
    dtype = torch.int32 if 255 * h * w < 2**31 else torch.int64
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    out = torch.zeros((n, c, h + 1, w + 1), dtype=dtype)
    inner = out[:, :, 1:, 1:]
    torch.cumsum(x.to(dtype), 3, out=inner)  # this order is ~5x faster than H first
    inner.cumsum_(2)
    return out.numpy()  # numpy's take/fancy indexing beats torch's 2-3x here


def _windows(size: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive-average-pooling windows [start, end) and their lengths, as PyTorch."""
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    return start, end, (end - start).astype(np.float32)


def crop_region(
    box: Sequence[float],
    width: int,
    height: int,
    image_size: int = CROP_SIZE,
    margin: int = CROP_MARGIN,
) -> tuple[int, int, int, int]:
    """The display-pixel region ``extract_face`` crops for ``box`` (margin, clip, int)."""
    mx = margin * (box[2] - box[0]) / (image_size - margin)
    my = margin * (box[3] - box[1]) / (image_size - margin)
    x1 = int(max(box[0] - mx / 2, 0))
    y1 = int(max(box[1] - my / 2, 0))
    x2 = int(min(box[2] + mx / 2, width))
    y2 = int(min(box[3] + my / 2, height))
    # A box MTCNN placed (almost) outside the photo still yields a 1 px region.
    x1, y1 = min(x1, width - 1), min(y1, height - 1)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def cut_crop(
    img: Image.Image, scale: float, region: tuple[int, int, int, int], image_size: int = CROP_SIZE
) -> Image.Image:
    """Resize ``region`` (display px) of ``img`` (``scale`` display px per px) to a square.

    At scale 1 this is exactly ``img.crop(region).resize(..., BILINEAR)``, as in
    facenet-pytorch; on a reduced image the same region is resampled with
    sub-pixel precision.
    """
    if scale == 1:
        return img.crop(region).resize((image_size, image_size), Image.Resampling.BILINEAR)
    w, h = img.size
    box = (
        min(region[0] / scale, w - 1e-3),
        min(region[1] / scale, h - 1e-3),
        min(region[2] / scale, w),
        min(region[3] / scale, h),
    )
    return img.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box)
