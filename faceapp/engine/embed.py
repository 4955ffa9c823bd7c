"""Embedder: batches of 160x160 face crops -> 512-d unit vectors.

The preprocessing must match what the weights were trained with (see
:func:`faceapp.engine.network.preprocess`); the pass itself is
:func:`faceapp.engine.network.forward`, the one statement of the network.

Two refinements from FaceNet's evaluation, measured on LFW (bench/lfw_accuracy.py):
``centre`` subtracts the mean embedding of a reference set and renormalises
(pairs.txt 0.9865 -> 0.9905, VAL@FAR=1e-3 0.950 -> 0.963 for the offline
weights), so it is on wherever the weights come with a centre; ``flip`` adds the
embedding of the mirrored crop (+0.0000 with centring, at twice the cost), so it
is off by default.

Precision and memory layout follow the process's
:class:`~faceapp.engine.inference.InferencePlan` (bf16 autocast on CPUs with native
bf16, fp16 on CUDA; bench/inference_variants.py measures both against fp32).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from PIL import Image
from torch import nn

from faceapp.engine import inference
from faceapp.engine.library import Library
from faceapp.engine.network import forward, preprocess

CROP_SIZE = 160


def decode_crop(jpeg: bytes) -> np.ndarray:
    """A stored crop as uint8 (160, 160, 3) RGB."""
    with Image.open(io.BytesIO(jpeg)) as src:
        im = src.convert("RGB")
        if im.size != (CROP_SIZE, CROP_SIZE):
            im = im.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def load_crops(lib: Library, face_ids: Sequence[int]) -> np.ndarray:
    """Decode the stored crops of these faces, in this order: uint8 (n, 160, 160, 3)."""
    out = np.empty((len(face_ids), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    crops = lib.face_crops(face_ids)
    for i, face_id in enumerate(face_ids):
        out[i] = decode_crop(crops[int(face_id)])
    return out


class Embedder:
    """Runs an InceptionResnetV1 in eval mode on one device, in batches.

    ``plan``: precision and layout (default: :func:`inference.choose` for ``device``).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str = "cpu",
        preprocess: str = "fixed",
        flip: bool = False,
        centre: np.ndarray | None = None,
        batch_size: int = 64,
        plan: inference.InferencePlan | None = None,
    ) -> None:
        self.plan = plan or inference.choose(str(torch.device(device)))
        self.device = torch.device(self.plan.device)
        self.model = self.plan.prepare(model)
        # The pass on a preprocessed batch; a compiled or quantized form of the same
        # pass may take its place (bench/inference_variants.py compares them).
        self.net: Callable[[torch.Tensor], torch.Tensor] = partial(forward, self.model)
        self.preprocess = preprocess
        self.flip = flip
        self.centre = None if centre is None else torch.as_tensor(centre, dtype=torch.float32)
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) uint8 -> (n, 512) float32, each row of unit length."""
        if len(crops) == 0:
            return np.zeros((0, 512), np.float32)
        out = []
        for start in range(0, len(crops), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(crops[start : start + self.batch_size]))
            x = preprocess(chunk.to(self.device).permute(0, 3, 1, 2), self.preprocess)
            x = self.plan.layout(x)
            with self.plan.autocast(self.plan.embed_precision):
                e = self.net(x).float()
                if self.flip:
                    e = e + self.net(torch.flip(x, dims=[3])).float()
            e = nn.functional.normalize(e, dim=1).cpu()
            if self.centre is not None:
                e = nn.functional.normalize(e - self.centre, dim=1)
            out.append(e.numpy())
        return np.concatenate(out).astype(np.float32)
