"""Shared fixtures: an isolated data directory, LFW locations, the real weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LFW_ROOT = Path(
    os.environ.get("FACEAPP_LFW", Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw")
)


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    """One converted-weights cache for the whole test run (converting takes seconds).

    It lives in the run's temporary folder, never in the source tree or the venv;
    parallel workers of one run share it (the cache is written atomically).
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / "weights-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch, weights_cache):
    """Keep every test away from the user's real libraries and settings."""
    monkeypatch.setenv("FACEAPP_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("FACEAPP_WEIGHTS_CACHE", str(weights_cache))


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The LFW folder with pairs files; skips when the data set is not on this machine."""
    if not (LFW_ROOT / "lfw-deepfunneled").is_dir():
        pytest.skip(f"LFW not found at {LFW_ROOT} (set FACEAPP_LFW to its folder)")
    return LFW_ROOT


@pytest.fixture(scope="session")
def lfw_dir(lfw_root: Path) -> Path:
    return lfw_root / "lfw-deepfunneled"


@pytest.fixture(scope="session")
def real_weights(tmp_path_factory, weights_cache):
    """The real embedder weights as the app resolves them offline (converted once, cached).

    Session fixtures run before the autouse one above, so the environment is set here too.
    """
    from faceapp.engine.weights import resolve_weights

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEAPP_DATA_DIR", str(tmp_path_factory.mktemp("weights-data")))
        patch.setenv("FACEAPP_WEIGHTS_CACHE", str(weights_cache))
        patch.delenv("FACEAPP_RANDOM_WEIGHTS", raising=False)
        return resolve_weights(allow_download=False)
