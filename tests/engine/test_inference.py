"""The inference plan: what it picks on which machine, and that the adopted precision
gives the embeddings of fp32 on real LFW faces."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from faceapp.engine import inference
from faceapp.engine.embed import Embedder
from faceapp.engine.images import load_image
from faceapp.engine.lfw import central_crops
from faceapp.engine.pipeline import Analyzer
from faceapp.engine.weights import build_model


def test_forced_fp32_wins_over_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(inference, "native_bf16", lambda: True)
    monkeypatch.setenv(inference.ENV_PRECISION, "fp32")
    plan = inference.choose("cpu")
    assert (plan.embed_precision, plan.detect_precision) == ("fp32", "fp32")
    assert "FACEAPP_PRECISION=fp32" in plan.reason
    monkeypatch.delenv(inference.ENV_PRECISION)
    assert inference.choose("cpu", "fp32").embed_precision == "fp32"


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_follows_what_the_cpu_offers(monkeypatch, native: bool, expected: str) -> None:
    monkeypatch.delenv(inference.ENV_PRECISION, raising=False)
    monkeypatch.setattr(inference, "native_bf16", lambda: native)
    plan = inference.choose("cpu")
    assert plan.embed_precision == expected
    assert plan.detect_precision == "fp32"  # MTCNN gains nothing from bf16 (measured)


@pytest.mark.parametrize(
    ("cores", "workers", "per_batch", "threads"), [(1, 1, 1, 1), (2, 2, 1, 1), (16, 4, 4, 15)]
)
def test_cpu_cores_are_shared_between_batches_a_scan_analyses_at_once(
    monkeypatch, cores: int, workers: int, per_batch: int, threads: int
) -> None:
    monkeypatch.setattr(inference, "cores", lambda: cores)
    plan = inference.choose("cpu")
    assert (plan.analyze_workers, plan.scan_threads, plan.torch_threads) == (
        workers,
        per_batch,
        threads,
    )
    assert f"a scan analyses {workers} photo batch(es) at once" in plan.reason


def test_the_scan_split_of_threads_lasts_only_as_long_as_the_scan() -> None:
    plan = inference.with_threads(inference.choose("cpu"), 2)
    plan = dataclasses.replace(plan, scan_threads=1)
    before = torch.get_num_threads()
    try:
        plan.apply_threads()
        with plan.scanning():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), plan.scanning():
            raise RuntimeError("a scan that fails gives the threads back too")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cuda_plan_is_fp16_and_batched(monkeypatch) -> None:
    monkeypatch.delenv(inference.ENV_PRECISION, raising=False)
    plan = inference.choose("cuda")
    assert (plan.embed_precision, plan.detect_precision) == ("fp16", "fp16")
    assert plan.photo_batch > inference.CPU_PHOTO_BATCH and not plan.channels_last


def test_unknown_or_impossible_precision_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv(inference.ENV_PRECISION, "int4")
    with pytest.raises(inference.PrecisionError, match="expected one of"):
        inference.choose("cpu")
    with pytest.raises(inference.PrecisionError, match="CUDA"):
        inference.choose("cpu", "fp16")


LFW_PEOPLE = ["Colin_Powell", "George_W_Bush", "Tony_Blair", "Serena_Williams"]


@pytest.fixture(scope="module")
def lfw_crops(lfw_dir: Path, real_weights) -> np.ndarray:
    paths = [p for name in LFW_PEOPLE for p in sorted((lfw_dir / name).glob("*.jpg"))[:6]]
    analyzer = Analyzer.from_weights(real_weights, "cpu")
    crops, no_face = central_crops(analyzer, paths)
    assert not no_face.any()
    return crops


def embed(real_weights, crops: np.ndarray, precision: str) -> np.ndarray:
    plan = dataclasses.replace(inference.choose("cpu", "fp32"), embed_precision=precision)
    model = build_model(real_weights, "cpu")
    e = Embedder(model, preprocess=real_weights.preprocess, centre=real_weights.centre, plan=plan)
    return e.embed(crops)


def test_bf16_embeddings_stay_those_of_fp32_on_lfw_faces(real_weights, lfw_crops) -> None:
    fp32 = embed(real_weights, lfw_crops, "fp32")
    bf16 = embed(real_weights, lfw_crops, "bf16")
    assert np.sum(fp32 * bf16, axis=1).min() > 0.999
    # same-person and other-person distances keep their side of the threshold
    d32 = ((fp32[:, None] - fp32[None]) ** 2).sum(-1)
    d16 = ((bf16[:, None] - bf16[None]) ** 2).sum(-1)
    assert np.abs(d32 - d16).max() < 0.02
    far = np.abs(d32 - real_weights.threshold) > 0.02
    assert np.array_equal((d32 < real_weights.threshold)[far], (d16 < real_weights.threshold)[far])


def test_detector_follows_the_plan_and_keeps_fp32_boxes(lfw_dir: Path) -> None:
    from faceapp.engine.detect import Detector

    images = [load_image(sorted((lfw_dir / n).glob("*.jpg"))[0]) for n in LFW_PEOPLE]
    fp32 = inference.choose("cpu", "fp32")
    auto = Detector(plan=inference.with_threads(inference.choose("cpu"), 0)).detect(images)
    plain = Detector(plan=inference.with_threads(fp32, 0)).detect(images)
    for a, b in zip(auto, plain, strict=True):
        assert [f.box for f in a] == [f.box for f in b]
