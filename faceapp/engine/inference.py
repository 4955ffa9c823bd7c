"""How the networks run on this machine: precision, memory layout, threads, batches.

One :class:`InferencePlan` per process, chosen at run time from what the hardware
offers (:func:`choose`); the Detector and the Embedder both follow it. The choices
and the measurements behind them (bench/inference_variants.py, README):

* CPU with native bf16 instructions (AVX512_BF16 or AMX): the embedder runs under
  bf16 autocast in channels-last layout, about 2x faster than fp32, with LFW
  accuracy within 0.001 of fp32. Without them bf16 is emulated and slower, so fp32.
* MTCNN stays fp32 on CPU: its small convolutions gain nothing from bf16, and
  fp32 keeps its boxes identical to facenet-pytorch's (tests/engine/test_detect.py).
  Channels-last layout is kept there (max pooling is ~4x faster in it).
* CUDA: fp16 autocast for both networks, large batches, more CPU decode workers.
* Threads: on CPU, a scan analyses photo batches on several threads at once
  (:mod:`scan_parallel`), one per core up to :data:`CPU_ANALYZE_WORKERS`, each pass
  on the cores left per thread (:meth:`InferencePlan.scanning`); one pass at a time
  (verify, re-embedding) runs on one torch thread per core but one. Measured on 2
  cores (bench/throughput.py, 12 MP set): two batches on one torch thread each 1.8x
  one batch on one thread; one batch on two torch threads 1.25x. Decoding (JPEG
  draft mode, ~10 ms a 12 MP photo) needs no core of its own.

``FACEAPP_PRECISION=fp32`` (or ``bf16``, ``fp16``; default ``auto``) overrides the
precision, e.g. to rule it out when comparing results across machines.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from faceapp.errors import FaceAppError

ENV_PRECISION = "FACEAPP_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Photos per detection/embedding batch in a scan: CPU gains nothing past a few
# (cache); a GPU needs many to be busy.
CPU_PHOTO_BATCH = 4
CUDA_PHOTO_BATCH = 32
# Batches analysed at once on CPU, at most: past a few, Python's share of MTCNN (box
# maths between the network passes) holds the GIL long enough to serialise threads.
CPU_ANALYZE_WORKERS = 4


class PrecisionError(FaceAppError, ValueError):
    """A precision this machine cannot run, or an unknown one."""


@dataclass(frozen=True)
class InferencePlan:
    """How the networks run; ``reason`` says why, for ``faceapp doctor``."""

    device: str
    embed_precision: str  # fp32 | bf16 | fp16
    detect_precision: str
    channels_last: bool
    torch_threads: int  # 0: leave torch's setting alone
    decode_workers: int
    analyze_workers: int  # photo batches analysed at once in a scan ...
    scan_threads: int  # ... each on this many torch threads (0: torch_threads)
    photo_batch: int
    reason: str

    @property
    def cpu(self) -> bool:
        return torch.device(self.device).type == "cpu"

    def prepare(self, net: nn.Module) -> nn.Module:
        """The network on the plan's device, in eval mode and the plan's layout."""
        net = net.to(self.device).eval()
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """An input batch in the plan's memory layout."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self, precision: str) -> contextlib.AbstractContextManager[Any]:
        """The autocast context for a network run at ``precision``."""
        if precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=DTYPES[precision])

    def apply_threads(self) -> None:
        """Set torch's intra-op threads (process-wide) as planned, on CPU."""
        if self.cpu and self.torch_threads > 0:
            torch.set_num_threads(self.torch_threads)

    @contextlib.contextmanager
    def scanning(self) -> Iterator[None]:
        """Torch threads split between the batches a scan analyses at once, for the
        scan's length only: verify, re-embedding and the rest run one network pass at
        a time and keep every thread the plan gives them."""
        if not (self.cpu and self.scan_threads > 0):
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.scan_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_features() -> dict[str, Any]:
    """What the CPU offers that the choice depends on (torch's own detection)."""
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "avx512": torch.cpu._is_avx512_supported(),
        "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
        "amx_tile": torch.cpu._is_amx_tile_supported(),
        "amx_fp16": torch.cpu._is_amx_fp16_supported(),
        "vnni": torch.cpu._is_vnni_supported(),
        "cores": cores(),
    }


def native_bf16() -> bool:
    """Does the CPU compute bf16 in hardware (else oneDNN emulates it, slower than fp32)?"""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def requested_precision(precision: str | None = None) -> str:
    """The precision asked for: the argument, else ``FACEAPP_PRECISION``, else auto."""
    value = (precision or os.environ.get(ENV_PRECISION) or "auto").strip().lower()
    if value not in PRECISIONS:
        raise PrecisionError(f"{ENV_PRECISION}={value!r}: expected one of {', '.join(PRECISIONS)}")
    return value


def choose(device: str = "cpu", precision: str | None = None) -> InferencePlan:
    """The plan for ``device`` (a resolved torch device string) on this machine."""
    asked = requested_precision(precision)
    n = cores()
    if torch.device(device).type == "cuda":
        chosen = "fp16" if asked == "auto" else asked
        why = "CUDA: fp16 autocast (tensor cores)"
        if asked != "auto":
            why = f"{ENV_PRECISION}={asked} forces {asked}"
        return InferencePlan(
            device=device,
            embed_precision=chosen,
            detect_precision=chosen,
            channels_last=False,
            torch_threads=0,
            decode_workers=max(2, n - 1),
            analyze_workers=1,
            scan_threads=0,
            photo_batch=CUDA_PHOTO_BATCH,
            reason=f"{why}; {max(2, n - 1)} CPU decode workers feed the GPU",
        )
    if asked == "auto":
        if native_bf16():
            embed, why = "bf16", "the CPU has native bf16 (AVX512_BF16/AMX): bf16 embedder"
        else:
            embed, why = "fp32", "no native bf16 on this CPU (emulated bf16 is slower): fp32"
    else:
        embed, why = asked, f"{ENV_PRECISION}={asked} forces {asked}"
    if embed == "fp16":
        raise PrecisionError(f"{ENV_PRECISION}=fp16 is for CUDA; on CPU use fp32 or bf16")
    workers = min(n, CPU_ANALYZE_WORKERS)
    threads, per_batch = max(1, n - 1), max(1, n // workers)
    return InferencePlan(
        device=device,
        embed_precision=embed,
        detect_precision="fp32",
        channels_last=True,
        torch_threads=threads,
        decode_workers=2,
        analyze_workers=workers,
        scan_threads=per_batch,
        photo_batch=CPU_PHOTO_BATCH,
        reason=f"{why}; MTCNN fp32; channels-last; a scan analyses {workers} photo batch(es)"
        f" at once on {n} core(s), {per_batch} torch thread(s) each; {threads} torch"
        " thread(s) for one pass at a time",
    )


def with_threads(plan: InferencePlan, threads: int) -> InferencePlan:
    """The same plan with another torch thread count (0: leave torch's alone)."""
    return replace(plan, torch_threads=threads)


def describe(device: str) -> dict[str, Any]:
    """What ``faceapp doctor`` reports: the device, what the hardware offers, the plan."""
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "bf16": torch.cuda.is_bf16_supported(),
        }
    return {
        "device": device,
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": gpu,
        "cpu": cpu_features(),
        "forced_precision": os.environ.get(ENV_PRECISION) or None,
        "plan": choose(device).as_dict(),
    }
