"""Model versions in the GUI: the Models dialog, and Verify judging with the active version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from guihelpers import open_and_wait

from faceapp.engine import album, naming
from faceapp.engine.library import Library

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 180_000


def faceapp_json(*args: str) -> dict:
    """``faceapp ... --json`` in a second process, on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "faceapp", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def fine_tune_quickly(path: Path) -> int:
    """A real, short fine-tuning run on three named clusters; returns the new version."""
    from faceapp.engine import finetune, finetune_plan

    lib = Library(path)
    for i, g in enumerate(sorted(album.groups(lib), key=lambda g: -g.count)):
        if g.kind == "cluster" and i < 3:
            naming.name_cluster(lib, g.id, f"Person {i}")
    options = finetune_plan.options_from(epochs=1, trainable="last", views=1, device="cpu")
    result = finetune.train(lib, options)
    report = finetune.accept(lib, result, device="cpu")
    assert report.activated
    lib.close()
    return report.model_id


@pytest.mark.slow
def test_models_dialog_lists_switches_and_removes(qtbot, window, scanned_library):
    _folder, library = scanned_library
    base = Library(library).active_model().id
    tuned = fine_tune_quickly(library)
    open_and_wait(qtbot, window, library=library)
    dialog = window.show_models()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=10_000)
    rows = {v.id: r for r, v in enumerate(dialog.versions)}
    cell = dialog.table.item(rows[tuned], 3).text()  # held-out VAL, before -> after
    assert "→" in cell and "%" in cell
    assert dialog.table.item(rows[tuned], 6).text() == "active"
    assert dialog.table.item(rows[base], 3).text() == "—"
    # switch back to the base version: in a worker, re-grouping the faces
    dialog.table.selectRow(rows[base])
    assert dialog.use_button.isEnabled() and dialog.remove_button.isEnabled()
    assert dialog.use_selected() is not None
    qtbot.waitUntil(lambda: dialog.job is None, timeout=TIMEOUT)
    assert f"Version {base} is active" in dialog.status.text(), dialog.status.text()
    assert "regrouped" in dialog.status.text()
    assert window.session.lib.active_model().id == base
    qtbot.waitUntil(lambda: dialog.versions and dialog.versions[rows[base]].active)
    # remove the fine-tuned one (asked first)
    asked = []
    dialog.confirm = lambda title, text: asked.append(title) or True
    dialog.table.selectRow(rows[tuned])
    assert dialog.remove_selected() is not None
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=10_000)
    assert asked == ["Remove Model Version"]
    assert [m.id for m in window.session.lib.models()] == [base]


@pytest.mark.slow
def test_verify_cli_with_library_gives_the_gui_verdict(qtbot, window, scanned_library, lfw_dir):
    _folder, library = scanned_library
    a = lfw_dir / "Colin_Powell" / "Colin_Powell_0001.jpg"
    b = lfw_dir / "Colin_Powell" / "Colin_Powell_0002.jpg"
    default = faceapp_json("verify", str(a), str(b))
    assert default["same"]
    # the library's active version gets a threshold of its own, under this pair's distance
    lib = Library(library)
    active = lib.active_model()
    lib.update_model(active.id, threshold=default["distance"] * 0.8, threshold_source="strict")
    lib.close()
    cli = faceapp_json("verify", str(a), str(b), "--library", str(library))
    assert not cli["same"] and cli["threshold_source"] == "strict"
    open_and_wait(qtbot, window, library=library)
    dialog = window.show_verify()
    dialog.set_photo(0, a)
    dialog.set_photo(1, b)
    qtbot.waitUntil(lambda: dialog.verdict is not None, timeout=TIMEOUT)
    assert dialog.verdict.same == cli["same"]
    assert dialog.verdict.threshold == pytest.approx(cli["threshold"], abs=1e-4)
    assert dialog.verdict.distance == pytest.approx(cli["distance"], abs=1e-3)
    assert dialog.verdict_label.text() == "Different people"
