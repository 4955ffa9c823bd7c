"""What an InceptionResnetV1 state dict must be, and reading one from an untrusted file.

Every weights source (a user's file, the VGGFace2 checkpoint, the converted graph, a
fine-tuned version) passes :func:`check_state_dict`: exactly the network's keys and
shapes, finite float tensors, so a wrong file fails here naming the tensor instead of
producing meaningless embeddings.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1

from faceapp.engine.weights_file import WeightsError, load_limited


@lru_cache(maxsize=1)
def meta_model() -> InceptionResnetV1:
    """The architecture without memory (meta device): the reference for keys, shapes, scales."""
    with torch.device("meta"):
        return InceptionResnetV1(classify=False, pretrained=None)


@lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of InceptionResnetV1(classify=False).state_dict() with its shape."""
    return {key: tuple(t.shape) for key, t in meta_model().state_dict().items()}


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _all_finite(tensor: torch.Tensor) -> bool:
    """numpy's check is ~20x faster than torch.isfinite on CPU, which matters at 23M values."""
    if tensor.device.type == "cpu" and tensor.dtype in _NUMPY_FLOATS:
        return bool(np.isfinite(tensor.detach().numpy()).all())
    return bool(torch.isfinite(tensor).all())


def check_state_dict(
    state: Any, origin: str, sources: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Accept only a dict of finite float tensors with exactly InceptionResnetV1's keys/shapes."""
    if not isinstance(state, dict):
        raise WeightsError(
            f"{origin}: expected a state dict (name -> tensor), found {type(state).__name__}"
        )
    sources = sources or {}
    expected = expected_shapes()
    for key, value in state.items():
        if key not in expected:
            where = f"tensor {sources[key]} (as {key})" if key in sources else f"key {key!r}"
            raise WeightsError(f"{origin}: {where} is not part of InceptionResnetV1")
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{origin}: {key} is a {type(value).__name__}, not a tensor")
    missing = [key for key in expected if key not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightsError(f"{origin}: InceptionResnetV1 weight {missing[0]} is missing{more}")
    for key, shape in expected.items():
        value = state[key]
        if tuple(value.shape) != shape:
            where = f"{key} (from {sources[key]})" if key in sources else key
            raise WeightsError(
                f"{origin}: {where} has shape {tuple(value.shape)}, expected {shape}"
            )
        if value.is_floating_point() and not _all_finite(value):
            raise WeightsError(f"{origin}: {key} contains NaN or infinite values")
        if not value.is_floating_point() and not key.endswith("num_batches_tracked"):
            raise WeightsError(f"{origin}: {key} has dtype {value.dtype}, expected floats")
    return state


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read once, with weights_file's limits: the same bytes are hashed and loaded."""
    obj, sha = load_limited(path)
    if isinstance(obj, dict):  # facenet-pytorch checkpoints carry a classifier we do not use
        obj = {k: v for k, v in obj.items() if not (isinstance(k, str) and k.startswith("logits."))}
    return check_state_dict(obj, str(path)), sha


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Load an untrusted weights file: tensors only, exactly InceptionResnetV1's keys and shapes.

    ``logits.*`` entries (the classifier of facenet-pytorch's own checkpoints) are dropped.
    """
    return read_state_dict(Path(path))[0]
