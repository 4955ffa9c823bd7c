"""Shared fixtures: an isolated data directory, LFW locations, the real weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LFW_ROOT = Path(
    os.environ.get("FACEAPP_LFW", Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw")
)
WEIGHTS_CACHE = Path(__file__).resolve().parents[1] / ".venv" / "faceapp-test-data"


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's real libraries and settings.

    The converted weights are shared between tests (converting takes seconds), so
    ``FACEAPP_WEIGHTS_CACHE`` points at one cache for the whole test run.
    """
    monkeypatch.setenv("FACEAPP_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    WEIGHTS_CACHE.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("FACEAPP_WEIGHTS_CACHE", str(WEIGHTS_CACHE))


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
def real_weights(tmp_path_factory):
    """The real embedder weights as the app resolves them offline (converted once, cached).

    Session fixtures run before the autouse one above, so the environment is set here too.
    """
    from faceapp.engine.weights import resolve_weights

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEAPP_DATA_DIR", str(tmp_path_factory.mktemp("weights-data")))
        WEIGHTS_CACHE.mkdir(parents=True, exist_ok=True)
        patch.setenv("FACEAPP_WEIGHTS_CACHE", str(WEIGHTS_CACHE))
        patch.delenv("FACEAPP_RANDOM_WEIGHTS", raising=False)
        return resolve_weights(allow_download=False)
