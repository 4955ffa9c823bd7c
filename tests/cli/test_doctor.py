"""``faceapp doctor``: says how the networks run here, and honours a forced precision."""

from __future__ import annotations

import json

from faceapp.cli import main


def doctor_json(capsys) -> dict:
    assert main(["doctor", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_doctor_json_has_the_fields(capsys, monkeypatch) -> None:
    monkeypatch.delenv("FACEAPP_PRECISION", raising=False)
    info = doctor_json(capsys)
    assert info["device"] in ("cpu", "cuda")
    assert {"capability", "avx512_bf16", "amx_tile", "cores"} <= set(info["cpu"])
    plan = info["plan"]
    assert plan["embed_precision"] in ("fp32", "bf16", "fp16")
    assert plan["torch_threads"] >= 0 and plan["decode_workers"] >= 1
    assert plan["analyze_workers"] >= 1
    assert plan["reason"] and info["forced_precision"] is None


def test_doctor_shows_forced_fp32(capsys, monkeypatch) -> None:
    monkeypatch.setenv("FACEAPP_PRECISION", "fp32")
    info = doctor_json(capsys)
    assert info["forced_precision"] == "fp32"
    assert info["plan"]["embed_precision"] == "fp32"
    assert main(["doctor", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "embedder: fp32" in out and "why: FACEAPP_PRECISION=fp32" in out


def test_doctor_bad_precision_is_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setenv("FACEAPP_PRECISION", "fast")
    assert main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FACEAPP_PRECISION" in err
