"""Preferences round-trip through QSettings (a temporary file in tests)."""

from __future__ import annotations

from pathlib import Path

from faceapp.gui.settings import MAX_RECENT, AppSettings


def test_defaults_and_round_trip(isolated_settings, tmp_path):
    s = AppSettings()
    assert s.device == "auto"
    assert s.weights_path is None
    assert s.threshold is None
    assert s.rescan_on_open is True
    s.device = "cpu"
    s.weights_path = tmp_path / "w.pt"
    s.threshold = 1.05
    s.cluster_options = {"min_cluster_size": 4}
    s.library_dir = tmp_path / "libs"
    s.sync()
    t = AppSettings()
    assert t.device == "cpu"
    assert t.weights_path == tmp_path / "w.pt"
    assert abs(t.threshold - 1.05) < 1e-9
    assert t.cluster_options == {"min_cluster_size": 4}
    assert t.library_dir == tmp_path / "libs"
    assert any(isolated_settings.rglob("*.ini")) or any(isolated_settings.rglob("*.conf"))


def test_recent_libraries_most_recent_first_and_bounded():
    s = AppSettings()
    for i in range(MAX_RECENT + 3):
        s.add_recent(Path(f"/photos/{i}"), Path(f"/libs/{i}.sqlite"))
    s.add_recent(Path("/photos/2"), Path("/libs/2.sqlite"))
    recent = AppSettings().recent()
    assert len(recent) == MAX_RECENT
    assert recent[0].folder == "/photos/2"
    assert len({r.library for r in recent}) == len(recent)
    s.remove_recent("/libs/2.sqlite")
    assert all(r.library != "/libs/2.sqlite" for r in AppSettings().recent())


def test_garbage_values_fall_back_to_defaults():
    s = AppSettings()
    s.set_value("engine/device", "tpu")
    s.set_value("engine/threshold", "abc")
    s.set_value("engine/cluster", "[1, 2")
    s.set_value("library/recent", "nonsense")
    assert s.device == "auto"
    assert s.threshold is None
    assert s.cluster_options == {}
    assert s.recent() == []
