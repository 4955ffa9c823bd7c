"""The embedding network, stated once: InceptionResnetV1's forward pass as named stages.

facenet-pytorch states ``forward()`` once; fine-tuning needs to run it in two parts
(a frozen trunk whose output is cached, then the head that learns), so the pass is
written here as :data:`STAGES` and every caller runs it through :func:`run_stages`:
the Embedder (the whole pass), training (trunk, then head) and evaluation. The
input standardisation lives here too (:func:`preprocess`), the only copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# InceptionResnetV1's forward pass, stage by stage (facenet-pytorch 2.5.3).
STAGES = (
    "conv2d_1a",
    "conv2d_2a",
    "conv2d_2b",
    "maxpool_3a",
    "conv2d_3b",
    "conv2d_4a",
    "conv2d_4b",
    "repeat_1",
    "mixed_6a",
    "repeat_2",
    "mixed_7a",
    "repeat_3",
    "block8",
    "avgpool_1a",
    "dropout",
    "last_linear",
    "last_bn",
)


def preprocess(x: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8 (n, 3, 160, 160) -> float, as the weights expect.

    ``fixed``: ``(x - 127.5) / 128`` (facenet-pytorch, FaceNet 2018 models);
    ``prewhiten``: per-image standardisation (older FaceNet models).
    """
    x = x.float()
    if mode == "fixed":
        return (x - 127.5) / 128.0
    if mode == "prewhiten":
        flat = x.reshape(len(x), -1)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1).clamp(min=1.0 / math.sqrt(flat.shape[1])).view(-1, 1, 1, 1)
        return (x - mean) / std
    raise ValueError(f"unknown preprocessing {mode!r}")


def build_model(state_dict: dict[str, torch.Tensor], device: str) -> nn.Module:
    """An InceptionResnetV1 (embedding head, no classifier) with these weights, in eval mode."""
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=False)
    state = {k: v for k, v in state_dict.items() if not k.startswith("logits.")}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def run_stages(model: nn.Module, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Run stages[start:stop] of the forward pass (the full pass is 0..len(STAGES))."""
    for name in STAGES[start:stop]:
        if name == "last_linear":
            x = x.flatten(1)
        x = getattr(model, name)(x)
    return x


def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The whole pass on preprocessed input: unit 512-d embeddings."""
    return F.normalize(run_stages(model, x, 0, len(STAGES)), dim=1)


def embed_head(
    model: nn.Module, features: torch.Tensor, cut: int, centre: torch.Tensor | None = None
) -> torch.Tensor:
    """Unit embeddings from trunk features; with a centre, as the Embedder centres them."""
    e = F.normalize(run_stages(model, features, cut, len(STAGES)), dim=1)
    return e if centre is None else F.normalize(e - centre, dim=1)


def centre_tensor(centre: np.ndarray | None, device: torch.device | str) -> torch.Tensor | None:
    return None if centre is None else torch.as_tensor(centre, dtype=torch.float32).to(device)


@torch.inference_mode()
def trunk_features(
    model: nn.Module,
    crops: torch.Tensor,
    cut: int,
    mode: str,
    device: str,
    batch_size: int,
    on_batch: Callable[[int], None],
) -> torch.Tensor:
    """Frozen-trunk output of uint8 crops (``mode``: their preprocessing), as float16 on the CPU."""
    out = []
    for start in range(0, len(crops), batch_size):
        x = preprocess(crops[start : start + batch_size], mode).to(device)
        out.append(run_stages(model, x, 0, cut).to("cpu", torch.float16))
        on_batch(min(start + batch_size, len(crops)))
    return torch.cat(out) if out else torch.zeros(0)


@torch.inference_mode()
def heldout_embeddings(
    model: nn.Module,
    feats: torch.Tensor,
    cut: int,
    flip: bool,
    centre: np.ndarray | None = None,
    batch: int = 128,
) -> np.ndarray:
    """Embeddings, as the Embedder computes them, from cached (n, views, ...) trunk features.

    View 0 is the crop; with ``flip`` view 1 is its mirror image, added before
    normalising; with a ``centre`` it is subtracted and the result renormalised.
    """
    device = next(model.parameters()).device
    c = centre_tensor(centre, device)
    out = []
    for start in range(0, len(feats), batch):
        f = feats[start : start + batch].to(device, torch.float32)
        e = embed_head(model, f[:, 0], cut)
        if flip:
            e = F.normalize(e + embed_head(model, f[:, 1], cut), dim=1)
        if c is not None:
            e = F.normalize(e - c, dim=1)
        out.append(e.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 512), np.float32)
