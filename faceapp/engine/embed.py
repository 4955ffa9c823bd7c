"""Embedder: batches of 160x160 face crops -> 512-d unit vectors.

The preprocessing must match what the weights were trained with: ``fixed``
standardisation ``(x - 127.5) / 128`` (facenet-pytorch and the FaceNet 2018
models) or per-image ``prewhiten`` (older FaceNet models).

Two refinements from FaceNet's evaluation, measured on LFW (bench/lfw_accuracy.py):
``centre`` subtracts the mean embedding of a reference set and renormalises
(pairs.txt 0.9865 -> 0.9905, VAL@FAR=1e-3 0.950 -> 0.963 for the offline
weights), so it is on wherever the weights come with a centre; ``flip`` adds the
embedding of the mirrored crop (+0.0000 with centring, at twice the cost), so it
is off by default.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def preprocess(crops: np.ndarray, mode: str) -> torch.Tensor:
    """uint8 (n, 160, 160, 3) RGB -> float (n, 3, 160, 160) as the weights expect."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    if mode == "fixed":
        return (x - 127.5) / 128.0
    if mode == "prewhiten":
        flat = x.reshape(len(x), -1)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1).clamp(min=1.0 / np.sqrt(flat.shape[1])).view(-1, 1, 1, 1)
        return (x - mean) / std
    raise ValueError(f"unknown preprocessing {mode!r}")


class Embedder:
    """Runs an InceptionResnetV1 in eval mode on one device, in batches."""

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str = "cpu",
        preprocess: str = "fixed",
        flip: bool = False,
        centre: np.ndarray | None = None,
        batch_size: int = 64,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
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
            x = preprocess(crops[start : start + self.batch_size], self.preprocess).to(self.device)
            e = nn.functional.normalize(self.model(x), dim=1)
            if self.flip:
                e = e + nn.functional.normalize(self.model(torch.flip(x, dims=[3])), dim=1)
            e = nn.functional.normalize(e, dim=1).cpu()
            if self.centre is not None:
                e = nn.functional.normalize(e - self.centre, dim=1)
            out.append(e.numpy())
        return np.concatenate(out).astype(np.float32)
