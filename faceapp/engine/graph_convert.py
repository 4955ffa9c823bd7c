"""The FaceNet frozen graph mapped onto facenet-pytorch's ``InceptionResnetV1``.

Facts about the frozen graph (checked by ``convert_nodes`` and the tests): input
placeholder ``input``, float32 NHWC ``[1, 160, 160, 3]`` with no preprocessing inside
the graph; output ``embeddings`` is L2-normalised (``GRAPH_PRE_NORM`` is the tensor
before that); every convolution has its BatchNorm folded into the kernel plus a
``Conv2D_bn_offset``; the Bottleneck's BatchNorm is a real ``FusedBatchNorm``
(epsilon 0.001, scale a constant 1); the residual scales are 0.17 / 0.10 / 0.20 / 1.0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faceapp.engine.graphdef import (
    DT_FLOAT,
    GraphNode,
    attr_dtype,
    attr_float,
    attr_shape,
    const_array,
    read_graph,
)
from faceapp.engine.state_dict import check_state_dict, expected_shapes, meta_model
from faceapp.engine.weights_file import WeightsError

GRAPH_INPUT = "input"
GRAPH_OUTPUT = "embeddings"
GRAPH_PRE_NORM = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"
BN_EPS = 1e-3  # facenet-pytorch's BatchNorm eps (BasicConv2d and last_bn)

_SCOPE = "InceptionResnetV1/"
_STEM = {
    "Conv2d_1a_3x3": "conv2d_1a",
    "Conv2d_2a_3x3": "conv2d_2a",
    "Conv2d_2b_3x3": "conv2d_2b",
    "Conv2d_3b_1x1": "conv2d_3b",
    "Conv2d_4a_3x3": "conv2d_4a",
    "Conv2d_4b_3x3": "conv2d_4b",
}
_BLOCKS = {"Mixed_6a": "mixed_6a", "Mixed_7a": "mixed_7a", "Block8": "block8"}
_REPEATS = {"Repeat": "repeat_1", "Repeat_1": "repeat_2", "Repeat_2": "repeat_3"}


def _block_prefix(parts: list[str]) -> tuple[str, list[str]] | None:
    """Split a TF scope (without ``InceptionResnetV1/``) into (torch module path, rest)."""
    head = parts[0]
    if head in _STEM:
        return _STEM[head], parts[1:]
    if head in _BLOCKS:
        return _BLOCKS[head], parts[1:]
    number = parts[1].rsplit("_", 1)[-1] if len(parts) > 1 else ""
    if head in _REPEATS and number.isdigit():  # Repeat/block35_3 -> repeat_1.2
        return f"{_REPEATS[head]}.{int(number) - 1}", parts[2:]
    return None


def _module_paths(layers: list[str]) -> dict[str, str]:
    """Map TF conv scopes to torch module paths.

    Inside a branch, slim's layer names sort in build order (0a < 0b < 0c < 1a), which is
    the order of facenet-pytorch's ``nn.Sequential``; a one-conv branch is a bare module.
    """
    paths: dict[str, str] = {}
    branches: dict[str, list[str]] = {}
    for layer in layers:
        split = _block_prefix(layer.removeprefix(_SCOPE).split("/"))
        if split is None:
            raise WeightsError(f"graph layer {layer} has no place in InceptionResnetV1")
        prefix, rest = split
        if not rest:
            paths[layer] = prefix
        elif rest == ["Conv2d_1x1"]:  # the residual up-projection (with bias)
            paths[layer] = f"{prefix}.conv2d"
        elif len(rest) == 2 and rest[0].startswith("Branch_"):
            branches.setdefault(f"{prefix}.branch{rest[0][7:]}", []).append(layer)
        else:
            raise WeightsError(f"graph layer {layer} has no place in InceptionResnetV1")
    for branch, members in branches.items():
        members.sort()
        for rank, layer in enumerate(members):
            paths[layer] = branch if len(members) == 1 else f"{branch}.{rank}"
    return paths


class _StateBuilder:
    """Collects converted tensors and remembers which graph tensor each came from."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}
        self.sources: dict[str, str] = {}

    def put(self, key: str, array: np.ndarray, source: str) -> None:
        if key in self.state:
            raise WeightsError(f"graph tensor {source} maps onto {key}, already taken")
        self.state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        self.sources[key] = source

    def put_identity_bn(self, prefix: str, offset: np.ndarray, source: str) -> None:
        """A BatchNorm that only adds ``offset``: var = 1 - eps makes 1/sqrt(var + eps) == 1."""
        ones = np.ones_like(offset)
        self.put(f"{prefix}.weight", ones, source)
        self.put(f"{prefix}.bias", offset, source)
        self.put(f"{prefix}.running_mean", np.zeros_like(offset), source)
        self.put(f"{prefix}.running_var", ones * np.float32(1.0 - BN_EPS), source)


def _hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return kernel.transpose(3, 2, 0, 1)


def _convert_convs(weights: dict[str, np.ndarray], out: _StateBuilder) -> None:
    """Folded conv layers become BasicConv2d with an identity BN; Conv2d_1x1 keeps its bias."""
    layers = sorted(name.rsplit("/", 1)[0] for name in weights if name.endswith("/weights"))
    for layer, path in _module_paths(layers).items():
        kernel_name = f"{layer}/weights"
        kernel = _hwio_to_oihw(weights.pop(kernel_name))
        if f"{layer}/Conv2D_bn_offset" in weights:
            offset_name = f"{layer}/Conv2D_bn_offset"
            out.put(f"{path}.conv.weight", kernel, kernel_name)
            out.put_identity_bn(f"{path}.bn", weights.pop(offset_name), offset_name)
        elif f"{layer}/biases" in weights:
            out.put(f"{path}.weight", kernel, kernel_name)
            out.put(f"{path}.bias", weights.pop(f"{layer}/biases"), f"{layer}/biases")
        else:
            raise WeightsError(f"graph tensor {kernel_name} has neither a BN offset nor biases")


def _convert_bottleneck(
    nodes: dict[str, GraphNode], weights: dict[str, np.ndarray], out: _StateBuilder
) -> None:
    """The Bottleneck: dense kernel [in, out] -> [out, in], and its unfolded FusedBatchNorm."""
    kernel = f"{_SCOPE}Bottleneck/weights"
    if kernel not in weights:
        raise WeightsError(f"graph tensor {kernel} is missing")
    out.put("last_linear.weight", weights.pop(kernel).T, kernel)
    bn = next(
        (n for n in nodes.values() if n.op == "FusedBatchNorm" and "/Bottleneck/" in n.name),
        None,
    )
    if bn is None or len(bn.inputs) < 5:
        raise WeightsError("graph has no FusedBatchNorm after the Bottleneck")
    # FusedBatchNorm inputs: x, scale (gamma), offset (beta), mean, variance
    names = [name.split(":")[0] for name in bn.inputs[1:5]]
    missing = [name for name in names if name not in weights]
    if missing:
        raise WeightsError(f"graph tensor {missing[0]} (Bottleneck BatchNorm) is missing")
    values = [weights.pop(name) for name in names]
    # A different eps in the graph: shift the variance so that var + eps stays the same.
    values[3] = values[3] + np.float32(attr_float(bn, "epsilon", 1e-4) - BN_EPS)
    keys = ("weight", "bias", "running_mean", "running_var")
    for key, value, name in zip(keys, values, names, strict=True):
        out.put(f"last_bn.{key}", value, name)


def _check_scales(scales: dict[str, float]) -> None:
    """The residual scales are hard-coded in facenet-pytorch; the graph must agree."""
    model = meta_model()
    for name, value in scales.items():
        split = _block_prefix(name.removeprefix(_SCOPE).split("/"))
        if split is None:
            raise WeightsError(f"graph scale {name} has no place in InceptionResnetV1")
        expected = getattr(model.get_submodule(split[0]), "scale", None)
        if expected is None or abs(expected - value) > 1e-6:
            raise WeightsError(f"graph scale {name} = {value}, model uses {expected}")


def _check_graph_io(nodes: dict[str, GraphNode]) -> None:
    """Refuse any graph that is not the 160x160 NHWC FaceNet this converter was written for."""
    placeholder = nodes.get(GRAPH_INPUT)
    if placeholder is None or placeholder.op != "Placeholder":
        raise WeightsError(f"graph has no placeholder named {GRAPH_INPUT!r}")
    if attr_shape(placeholder)[1:] != [160, 160, 3]:
        raise WeightsError(f"graph input shape {attr_shape(placeholder)}, expected [n,160,160,3]")
    for name in (GRAPH_OUTPUT, GRAPH_PRE_NORM):
        if name not in nodes:
            raise WeightsError(f"graph has no node named {name!r}")


def convert_nodes(nodes: dict[str, GraphNode]) -> dict[str, torch.Tensor]:
    """Map every float constant of the FaceNet graph onto the InceptionResnetV1 state dict.

    Fails loudly, naming the tensor, on any weight that has no place, any state-dict
    key left without a value, and any shape mismatch.
    """
    _check_graph_io(nodes)
    weights: dict[str, np.ndarray] = {}
    scales: dict[str, float] = {}
    for name, node in nodes.items():
        if node.op != "Const" or attr_dtype(node) != DT_FLOAT:
            continue  # int32 axes and shapes are structure, not weights
        array = const_array(node)
        if array.ndim:
            weights[name] = array
        elif name.endswith("/mul/x"):
            scales[name.removesuffix("/mul/x")] = float(array)
        # other float scalars (the L2 normalisation's epsilon) carry no weights
    out = _StateBuilder()
    _convert_bottleneck(nodes, weights, out)
    _convert_convs(weights, out)
    if weights:
        raise WeightsError(f"graph tensor {next(iter(weights))} has no place in InceptionResnetV1")
    _check_scales(scales)
    for key in expected_shapes():
        if key.endswith("num_batches_tracked"):
            out.state[key] = torch.tensor(0, dtype=torch.long)
    check_state_dict(out.state, "converted graph", out.sources)
    return out.state


def convert_graph(path: Path) -> dict[str, torch.Tensor]:
    """Read the frozen graph at ``path`` and convert it (see ``convert_nodes``)."""
    return convert_nodes(read_graph(path))
