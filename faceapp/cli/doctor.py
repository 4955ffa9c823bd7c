"""``faceapp doctor``: the device, what the CPU offers, and how the networks run here.

Quick (imports torch, loads no weights), so it is the first thing to run when a
scan is slower than expected or results differ between machines.
"""

from __future__ import annotations

import argparse

from faceapp.cli import add_json_option, echo, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="device, CPU features and how the networks run here")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_json_option(p)
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from faceapp import config
    from faceapp.engine import inference

    info = inference.describe(config.resolve_device(args.device))
    if args.json:
        print_json(info)
        return 0
    cpu, plan, gpu = info["cpu"], info["plan"], info["gpu"]
    yes = {True: "yes", False: "no"}
    echo(f"device: {info['device']} (torch {info['torch']})")
    echo(f"GPU: {gpu['name']}, {gpu['memory_gib']} GiB" if gpu else "GPU: none (no CUDA device)")
    echo(
        f"CPU: {cpu['capability']}, {cpu['cores']} cores; AVX512_BF16 {yes[cpu['avx512_bf16']]},"
        f" AMX {yes[cpu['amx_tile']]}, VNNI {yes[cpu['vnni']]}"
    )
    layout = "channels-last" if plan["channels_last"] else "default layout"
    echo(f"embedder: {plan['embed_precision']}, {layout}")
    echo(f"detector (MTCNN): {plan['detect_precision']}, {layout}")
    threads = plan["torch_threads"] or "torch's default"
    echo(
        f"threads: a scan analyses {plan['analyze_workers']} batch(es) at once,"
        f" {plan['scan_threads'] or threads} torch each; otherwise {threads} torch;"
        f" {plan['decode_workers']} decode workers;"
        f" {plan['photo_batch']} photos per batch"
    )
    echo(f"why: {plan['reason']}")
    if info["forced_precision"]:
        echo(f"{inference.ENV_PRECISION}={info['forced_precision']}")
    return 0
