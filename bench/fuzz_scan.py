"""Fuzz the scan: a folder of real LFW photos mixed with >= 1,000 damaged or odd files.

The corpus is made by tests/damaged_photos.py (the tests scan a smaller one) from LFW
photos (nothing is downloaded): truncated and bit-flipped JPEG/PNG/WebP/TIFF, wrong
extensions, empty and tiny files, huge declared dimensions, broken EXIF, 16-bit and
palette PNGs, animated GIF/WebP, multi-page TIFF, odd modes (CMYK, float, 1-bit), odd
file names (non-UTF-8 bytes, newlines), unreadable files (chmod 000), and things that
are not files at all (a FIFO, a dangling link, a folder called ``x.jpg``).

The scan runs as ``faceapp scan --json`` in a child process, so a decoder crash
(segfault) shows up as a crash, not as a dead benchmark; a scan that outlives
``--timeout`` counts as a hang. As root, the child runs without the capabilities
that let root read any file (``setpriv``), so chmod 000 really means unreadable.

Afterwards every file is checked against what it should be: good files (valid
images, whatever their name or mode) must be stored as photos, bad files
(truncated, empty, not images, too large) must be reported with a reason, and
files that may go either way (bit flips) must be one or the other, never lost.

    python bench/fuzz_scan.py [--count 1000] [--good 200] [--big 3] [--seed 0] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LFW = Path(os.environ.get("FACEAPP_LFW", Path(__file__).resolve().parents[2] / "shared/data/lfw"))
RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from damaged_photos import add_good_photos, make_corpus  # noqa: E402
from kill_harness import child_env  # noqa: E402
from scan_verdict import check, library_photos, permissions_enforced, unprivileged_prefix  # noqa: E402


def lfw_sources(count: int, seed: int) -> list[Path]:
    files = sorted((LFW / "lfw-deepfunneled").glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"LFW not found under {LFW} (set FACEAPP_LFW)")
    return random.Random(seed).sample(files, min(count, len(files)))


@dataclass
class RunResult:
    returncode: int | None  # None: killed at the time limit
    signal: int | None
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_scan(folder: Path, library: Path, env: dict, timeout: float) -> RunResult:
    """``faceapp scan --json`` in a child; peak RSS from wait4, a hang killed at ``timeout``."""
    scan = ["scan", str(folder), "--library", str(library), "--device", "cpu", "--json"]
    cmd = [*unprivileged_prefix(), sys.executable, "-m", "faceapp", *scan]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    code = proc.returncode
    return RunResult(
        returncode=None if timed_out.is_set() else (code if code >= 0 else None),
        signal=-code if code < 0 and not timed_out.is_set() else None,
        seconds=seconds,
        peak_rss_mb=usage.ru_maxrss / 1024,
        stdout=stdout,
        stderr=stderr,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="fuzz files")
    parser.add_argument("--good", type=int, default=200, help="real LFW photos mixed in")
    parser.add_argument("--big", type=int, default=3, help="large valid photos (40-60 MP)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a hang")
    parser.add_argument(
        "--baseline", type=int, default=60, help="good photos for a memory baseline"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the corpus in this folder")
    parser.add_argument("--out", default="fuzz_scan.json", help="file name under bench/results")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fuzz-scan-"))
    folder = args.keep or (work / "photos")
    try:
        sources = lfw_sources(args.count + args.good + 200, args.seed)
        good_src, fuzz_src = sources[: args.good], sources[args.good :]
        t0 = time.perf_counter()
        corpus = make_corpus(folder, fuzz_src, args.count, args.seed, big=args.big)
        good = add_good_photos(folder, good_src)
        gen_seconds = time.perf_counter() - t0
        env = {"OMP_NUM_THREADS": "2"} | child_env(work / "data")

        baseline = None
        if args.baseline:
            base_folder = work / "baseline"
            add_good_photos(base_folder, good_src[: args.baseline])
            baseline = run_scan(base_folder, work / "baseline.sqlite", env, args.timeout)

        result = run_scan(folder, work / "library.sqlite", env, args.timeout)
        crashed = result.returncode not in (0, None)
        hung = result.returncode is None and result.signal is None
        report = {}
        if result.returncode == 0:
            report = json.loads(result.stdout)
        photos = (
            library_photos(work / "library.sqlite") if (work / "library.sqlite").exists() else {}
        )
        errors = [(e["path"], e["reason"]) for e in report.get("errors", [])]
        verdict = check(corpus, good, photos, errors)
        kinds = Counter(c.kind for c in corpus)
        out = {
            "files_tried": verdict.files_tried,
            "fuzz_files": len(corpus),
            "good_lfw_photos": len(good),
            "crashes": int(crashed),
            "hangs": int(hung),
            "per_file_time_limit_hits": verdict.timeouts,
            "errors_reported": len(errors),
            "good_expected": verdict.good_expected,
            "good_processed": verdict.good_processed,
            "bad_expected": verdict.bad_expected,
            "bad_reported": verdict.bad_reported,
            "either_way_files": verdict.any_files,
            "either_way_stored": verdict.any_stored,
            "lost": verdict.lost,
            "wrong": verdict.wrong,
            "unclear_reasons": verdict.unclear_reasons,
            "faces": report.get("faces"),
            "scan_seconds": round(result.seconds, 1),
            "peak_rss_mb": round(result.peak_rss_mb, 1),
            "baseline_peak_rss_mb": round(baseline.peak_rss_mb, 1) if baseline else None,
            "baseline_photos": args.baseline,
            "permissions_enforced": permissions_enforced(),
            "generate_seconds": round(gen_seconds, 1),
            "reasons": verdict.reasons,
            "kinds": dict(sorted(kinds.items())),
            "returncode": result.returncode,
            "signal": result.signal,
            "stderr_tail": result.stderr[-2000:],
            "seed": args.seed,
        }
        rows = [
            ("files tried", out["files_tried"]),
            ("  fuzz files / real LFW photos", f"{len(corpus)} / {len(good)}"),
            ("crashes", out["crashes"]),
            ("hangs", out["hangs"]),
            ("per-file time limit hits", out["per_file_time_limit_hits"]),
            ("errors reported", out["errors_reported"]),
            ("bad files reported", f"{verdict.bad_reported} / {verdict.bad_expected}"),
            ("good photos processed", f"{verdict.good_processed} / {verdict.good_expected}"),
            ("either-way files (stored / all)", f"{verdict.any_stored} / {verdict.any_files}"),
            ("lost (neither stored nor reported)", len(verdict.lost)),
            ("wrong verdicts", len(verdict.wrong)),
            ("unclear reasons", len(verdict.unclear_reasons)),
            ("faces found", out["faces"]),
            ("scan seconds", out["scan_seconds"]),
            ("peak RSS MB", out["peak_rss_mb"]),
            (f"baseline peak RSS MB ({args.baseline} photos)", out["baseline_peak_rss_mb"]),
            ("chmod 000 enforced", out["permissions_enforced"]),
        ]
        width = max(len(r[0]) for r in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
        print("reasons:")
        for reason, n in verdict.reasons.items():
            print(f"  {n:>5}  {reason}")
        for item in (verdict.wrong + verdict.unclear_reasons)[:20]:
            print("  !", item)
        for rel in verdict.lost[:20]:
            print("  lost:", rel)
        if crashed or hung:
            print(result.stderr[-3000:])
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False))
        ok = not (crashed or hung or verdict.lost or verdict.wrong or verdict.unclear_reasons)
        return 0 if ok else 1
    finally:
        for c in folder.rglob("unreadable-*"):
            c.chmod(0o644)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
