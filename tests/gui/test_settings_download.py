"""Settings > Download VGGFace2 Weights: runs in a worker, says what happened."""

from __future__ import annotations

from pathlib import Path

import torch

from faceapp.engine import weights
from faceapp.gui.dialogs.settings import SettingsDialog
from faceapp.gui.settings import AppSettings


def test_download_in_a_worker_then_used(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fetched = []

    def fake_network(url: str, dest: Path, timeout: float = 30.0) -> None:
        fetched.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.save(weights.random_weights().state_dict, dest)

    monkeypatch.setattr(weights, "_download", fake_network)
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    assert fetched == []  # opening Settings touches no network
    dialog.download.click()
    assert not dialog.download.isEnabled()
    qtbot.waitUntil(lambda: dialog.downloaded, timeout=60_000)
    assert fetched == [weights.VGGFACE2_URL]
    assert "VGGFace2 weights ready" in dialog.download_status.text()
    assert dialog.save()["engine"]  # the window re-resolves its weights
    assert weights.resolve_weights().source == "vggface2"


def test_download_failure_is_shown_and_can_be_retried(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(weights.urllib.request, "urlopen", unreachable)
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.download.click()
    qtbot.waitUntil(dialog.download.isEnabled, timeout=60_000)
    assert "Could not download the VGGFace2 weights" in dialog.download_status.text()
    assert not dialog.downloaded and not dialog.save()["engine"]
