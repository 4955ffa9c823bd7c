"""Untrusted weights files: refused with one clear line by every command, no code run."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

# ----------------------------------------------------------------------------- untrusted weights


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_weights(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "pwned"
    files = {}
    buf = io.BytesIO()
    torch.save({"model": Exploit(marker)}, buf)
    files["pickled code"] = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"conv2d_1a.conv.weight": torch.zeros(3, 3)}, buf)
    files["wrong tensors"] = buf.getvalue()
    files["truncated"] = files["wrong tensors"][:200]
    files["not torch"] = pickle.dumps({"a": 1})
    files["empty"] = b""
    out = {}
    for name, data in files.items():
        path = tmp_path / f"{name.replace(' ', '-')}.pt"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.mark.parametrize("command", ["scan", "verify", "weights"])
def test_cli_refuses_untrusted_weights_with_one_clear_line(tmp_path, capsys, command):
    from faceapp.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (60, 60)).save(folder / "a.jpg")
    for name, path in evil_weights(tmp_path).items():
        args = {
            "scan": ["scan", str(folder), "--library", str(tmp_path / "lib.sqlite")],
            "verify": ["verify", str(folder / "a.jpg"), str(folder / "a.jpg")],
            "weights": ["weights"],
        }[command] + ["--weights", str(path)]
        code = main(args)
        err = capsys.readouterr().err
        assert code != 0, name
        assert err.startswith("faceapp: ") and err.count("\n") == 1, (name, err)
        assert "Traceback" not in err and str(path) in err, (name, err)
    assert not (tmp_path / "pwned").exists()
