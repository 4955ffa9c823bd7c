"""Hostile weights files and an offline machine, through the real ``faceapp`` command.

Rows:

* each hostile weights file of the attack: the engine's time to refuse it
  (``load_state_dict_file`` in this process), then ``faceapp weights --weights F``
  as a whole (most of it is importing torch), its peak memory and one-line message (an 8 MB
  archive holding one deflated 8 GiB tensor, a 3 GiB sparse file, a symlink to
  /dev/zero, a FIFO, pickled code), and a real-sized file that must load;
* ``faceapp verify A B`` on two LFW photos with the network unreachable, once with
  DNS answering "no" at once and once with DNS never answering (each lookup waits
  10 s): the same time is the goal, and no connection attempted.

    python bench/hostile_io.py [--runs 3]     (--runs 0: the weights rows only)

Figures are noisy on a shared machine: compare rows of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
LFW = Path(os.environ.get("FACEAPP_LFW", REPO.parent / "shared" / "data" / "lfw"))
DNS_WAIT_S = 10.0

# --- hostile files -------------------------------------------------------------------------


def _zip64(members: list[tuple[str, int, bytes, int]]) -> bytes:
    """A zip archive whose members are (name, method, stored bytes, uncompressed size)."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, method, data, size in members:
        offset = out.tell()
        extra = struct.pack("<HHQQ", 1, 16, size, len(data))
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, 0,
                              0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra)))  # fmt: skip
        out.write(name.encode() + extra + data)
        extra = struct.pack("<HHQQ", 1, 16, size, len(data))
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0,
                                  0x21, 0, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0,
                                  0, 0, 0, offset))  # fmt: skip
        central.write(name.encode() + extra)
    start, cd = out.tell(), central.getvalue()
    out.write(cd)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(cd),
                          start, 0))  # fmt: skip
    return out.getvalue()


class _Storage:
    pass


def _deflated_tensor_archive(gib: int = 8) -> bytes:
    """~8 MB on disk: one float tensor of ``gib`` GiB of zeros, deflated."""
    import torch

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Storage):
                return ("storage", torch.FloatStorage, "0", "cpu", gib * 2**30 // 4)
            return None

    structure = io.BytesIO()
    Pickler(structure, protocol=2).dump({"last_bn.bias": _Storage()})
    chunk = 1 << 24
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH)
    deflated = block * (gib * 2**30 // chunk) + packer.flush()
    return _zip64(
        [
            ("archive/data.pkl", 0, structure.getvalue(), len(structure.getvalue())),
            ("archive/byteorder", 0, b"little", 6),
            ("archive/data/0", 8, deflated, gib * 2**30),
            ("archive/version", 0, b"3\n", 2),
        ]
    )


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('owned')",))


def build_hostile(folder: Path) -> dict[str, Path]:
    import torch

    from faceapp.engine.weights import random_weights

    files = {}
    files["8 MB archive, deflated 8 GiB tensor"] = folder / "bomb.pt"
    files["8 MB archive, deflated 8 GiB tensor"].write_bytes(_deflated_tensor_archive())
    sparse = folder / "huge.pt"
    with open(sparse, "wb") as handle:
        handle.write(b"PK\x03\x04")
        handle.truncate(3 * 2**30)
    files["3 GiB file (sparse)"] = sparse
    files["symlink to /dev/zero"] = folder / "zero.pt"
    files["symlink to /dev/zero"].symlink_to("/dev/zero")
    files["FIFO"] = folder / "fifo.pt"
    os.mkfifo(files["FIFO"])
    files["pickled code"] = folder / "evil.pt"
    torch.save({"conv2d_1a.conv.weight": _Exploit(folder / "owned")}, files["pickled code"])
    files["real size, valid (must load)"] = folder / "real.pt"
    state = random_weights().state_dict | {"logits.weight": torch.zeros(8631, 512)}
    torch.save(state, files["real size, valid (must load)"])
    return files


def _child(args: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """(seconds, peak RSS in MB, exit code, last stderr line) of one faceapp process.

    GNU time reports the peak: a child forked from this (large) process would count
    the parent's pages in its own ru_maxrss.
    """
    t0 = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS_KB %M", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - t0
    lines = done.stderr.strip().splitlines()
    rss = [int(x.split()[1]) for x in lines if x.startswith("MAXRSS_KB ")]
    lines = [x for x in lines if not x.startswith(("MAXRSS_KB ", "Command exited"))]
    return seconds, (rss[-1] // 1024 if rss else -1), done.returncode, (lines or [""])[-1]


# --- offline verify ------------------------------------------------------------------------

RUNNER = textwrap.dedent(
    """
    import json, socket, sys, time
    mode, attempts = sys.argv.pop(1), []
    def lookup(*args, **kwargs):
        attempts.append("dns")
        if mode == "dns-hangs":
            time.sleep(%(wait)s)
        raise socket.gaierror(-3, "Temporary failure in name resolution")
    def connect(*args, **kwargs):
        attempts.append("connect")
        raise OSError(101, "Network is unreachable")
    socket.getaddrinfo = lookup
    socket.create_connection = connect
    socket.socket.connect = lambda self, address: connect(address)
    from faceapp.cli import main
    code = main(sys.argv[1:])
    print("ATTEMPTS " + json.dumps(attempts), file=sys.stderr)
    sys.exit(code)
    """
) % {"wait": DNS_WAIT_S}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="verify runs per DNS mode")
    args = ap.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            FACEAPP_DATA_DIR=str(tmp / "data"),
            TORCH_HOME=str(tmp / "torch"),
        )
        env.pop("FACEAPP_RANDOM_WEIGHTS", None)
        from faceapp.engine.state_dict import load_state_dict_file
        from faceapp.engine.weights_file import WeightsError

        for label, path in build_hostile(tmp).items():
            t0 = time.perf_counter()
            with contextlib.suppress(WeightsError):
                load_state_dict_file(path)
            in_process = time.perf_counter() - t0
            cmd = [sys.executable, "-m", "faceapp", "weights", "--weights", str(path)]
            seconds, rss, code, last = _child(cmd, env)
            refused = code != 0
            rows.append(
                {
                    "row": f"weights: {label}",
                    "engine_s": round(in_process, 3),
                    "seconds": round(seconds, 2),
                    "peak_rss_mb": rss,
                    "exit": code,
                    "message": last if refused else "loaded",
                    "ok": refused != label.startswith("real") and not (tmp / "owned").exists(),
                }
            )
        photos = [sorted((LFW / "lfw-deepfunneled" / p).glob("*.jpg"))[0] for p in
                  ("Aaron_Eckhart", "Abel_Pacheco")]  # fmt: skip
        verify = ["verify", *map(str, photos), "--device", "cpu"]
        if args.runs:
            _child([sys.executable, "-m", "faceapp", *verify], env)  # converts the weights once
        for mode in ("dns-fails", "dns-hangs") if args.runs else ():
            times, tried, last = [], [], ""
            for _ in range(args.runs):
                cmd = [sys.executable, "-c", RUNNER, mode, *verify]
                seconds, rss, code, last = _child(cmd, env)
                times.append(seconds)
                tried += json.loads(last.removeprefix("ATTEMPTS ")) if "ATTEMPTS" in last else []
            rows.append(
                {
                    "row": f"verify offline, {mode}",
                    "engine_s": None,
                    "seconds": round(statistics.median(times), 2),
                    "peak_rss_mb": rss,
                    "exit": code,
                    "message": f"connections tried: {len(tried)}",
                    "ok": code == 0 and not tried,
                }
            )
    print(f"{'row':<46} {'engine s':>8} {'process s':>9} {'MB':>6}  ok  message")
    for r in rows:
        engine = "" if r["engine_s"] is None else f"{r['engine_s']:.3f}"
        print(
            f"{r['row']:<46} {engine:>8} {r['seconds']:>9.2f} {r['peak_rss_mb']:>6}"
            f"  {'yes' if r['ok'] else 'NO ':<3} {r['message'][:100]}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "hostile_io.json"
    summary = {"runs": args.runs, "dns_wait_s": DNS_WAIT_S, "rows": rows}
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
