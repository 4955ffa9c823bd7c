"""Inference variants side by side: speed and accuracy of each against fp32.

Embedder (ms per face, real LFW crops, batches of 16) and MTCNN (ms per 12 MP photo,
split by net, as the app runs them) under fp32, bf16 autocast, bf16 weights,
channels-last, int8 (x86 FX static quantization, dynamic Linear quantization),
torch.compile (``--compile``) and 1 or 2 torch threads, timed interleaved round by
round (medians; the machine is shared, so compare within a run, not across runs).
Then, per variant with its own numerics, LFW pairs.txt accuracy with the app's
centred embeddings; end to end on the 12 MP set (photos/s and CPU seconds per
photo) for fp32 and for the plan :func:`inference.choose` adopts, with the torch
thread / decode worker splits; and BCubed F of the app's clustering on scanned LFW
(people with >= 10 photos) for fp32 against the adopted plan.

    python bench/inference_variants.py [--parts variants,scan,cluster] [--rounds 5]
        [--large-count 40] [--compile] [--skip-accuracy]

Writes bench/results/inference_variants.json (a run of some parts keeps the others').
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench._cluster_data import from_library
from bench.cluster_quality import run as cluster_run
from bench.throughput import LFW, RESULTS, end_to_end, make_large_photos, stage_times
from faceapp.engine import inference, lfw, metrics, network
from faceapp.engine.clustering import ClusterParams
from faceapp.engine.detect import Detector
from faceapp.engine.embed import Embedder
from faceapp.engine.images import load_image
from faceapp.engine.pipeline import Analyzer
from faceapp.engine.weights import LoadedWeights, build_model, resolve_weights

EMBED_BATCH = 16
SAMPLE = 256  # crops compared by cosine for the variants without a full LFW run


@dataclass
class Variant:
    """One way to run a network; ``same_as``: a variant with the same numerics."""

    name: str
    plan: inference.InferencePlan
    make: Callable[[], object] | None = None  # builds the Embedder/Detector (lazily)
    same_as: str | None = None
    note: str = ""
    full: bool = False  # LFW pairs.txt accuracy (else cosine to fp32 on a sample only)
    built: object = None
    times: list[float] = field(default_factory=list)
    nets: dict[str, list[float]] = field(default_factory=dict)
    setup_s: float = 0.0
    error: str | None = None


class TimedDetector(Detector):
    """The app's Detector, with the time spent in each of its three nets."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.spent = {"pnet": 0.0, "rnet": 0.0, "onet": 0.0}

    def _run(self, net, x):
        t0 = time.perf_counter()
        out = super()._run(net, x)
        name = next(n for n in self.spent if getattr(self, n) is net)
        self.spent[name] += time.perf_counter() - t0
        return out


class Whole(torch.nn.Module):
    """The embedder's whole pass as one module (for torch.compile and FX quantization)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return network.forward(self.model, x)


# -- variants ---------------------------------------------------------------------------


def embedder_variants(loaded: LoadedWeights, calib: np.ndarray, compile_: bool) -> list[Variant]:
    fp32 = inference.choose("cpu", "fp32")
    bf16 = dataclasses.replace(fp32, embed_precision="bf16")
    plain = dataclasses.replace(fp32, channels_last=False)

    def emb(plan: inference.InferencePlan, threads: int = 1) -> Variant:
        plan = inference.with_threads(plan, threads)
        return Variant(
            "",
            plan,
            lambda: Embedder(
                build_model(loaded, "cpu"),
                preprocess=loaded.preprocess,
                centre=loaded.centre,
                batch_size=EMBED_BATCH,
                plan=plan,
            ),
        )

    def named(v: Variant, name: str, same_as=None, note: str = "", full=False) -> Variant:
        v.name, v.same_as, v.note, v.full = name, same_as, note, full
        return v

    def bf16_weights() -> Embedder:
        e = emb(bf16).make()  # type: ignore[misc]
        e.model.to(torch.bfloat16)
        return e

    def int8_static() -> Embedder:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        e = emb(plain).make()  # type: ignore[misc]
        x = network.preprocess(torch.from_numpy(calib[:8]).permute(0, 3, 1, 2), "fixed")
        prepared = prepare_fx(Whole(e.model), get_default_qconfig_mapping("x86"), (x,))
        with torch.inference_mode():
            for start in range(0, len(calib), EMBED_BATCH):
                chunk = torch.from_numpy(calib[start : start + EMBED_BATCH]).permute(0, 3, 1, 2)
                prepared(network.preprocess(chunk, "fixed"))
        e.net = convert_fx(prepared)
        return e

    def int8_dynamic() -> Embedder:
        e = emb(plain).make()  # type: ignore[misc]
        q = torch.ao.quantization.quantize_dynamic(e.model, {torch.nn.Linear}, torch.qint8)
        e.net = Whole(q)
        return e

    def compiled(plan: inference.InferencePlan) -> Callable[[], Embedder]:
        def make() -> Embedder:
            e = emb(plan).make()  # type: ignore[misc]
            e.net = torch.compile(Whole(e.model))
            return e

        return make

    out = [
        named(emb(plain), "fp32 (before)", full=True),
        named(emb(plain, 2), "fp32, 2 threads", "fp32 (before)"),
        named(emb(fp32), "fp32 channels-last"),
        named(emb(dataclasses.replace(bf16, channels_last=False)), "bf16 autocast"),
        named(emb(bf16), "bf16 autocast channels-last", full=True),
        named(emb(bf16, 2), "bf16 autocast ch-last, 2 thr", "bf16 autocast channels-last"),
        named(Variant("", inference.with_threads(bf16, 1), bf16_weights), "bf16 weights ch-last"),
        named(
            Variant("", inference.with_threads(plain, 1), int8_static),
            "int8 static (FX x86)",
            note=f"calibrated on {len(calib)} LFW crops",
            full=True,
        ),
        named(Variant("", inference.with_threads(plain, 1), int8_dynamic), "int8 dynamic (Linear)"),
    ]
    if compile_:
        out += [
            named(
                Variant("", inference.with_threads(plain, 1), compiled(plain)),
                "torch.compile fp32",
            ),
            named(
                Variant("", inference.with_threads(bf16, 1), compiled(bf16)),
                "torch.compile bf16 ch-last",
            ),
        ]
    return out


def detector_variants() -> list[Variant]:
    fp32 = inference.choose("cpu", "fp32")

    def det(name: str, plan: inference.InferencePlan, threads: int = 1, same_as=None) -> Variant:
        plan = inference.with_threads(plan, threads)
        return Variant(name, plan, lambda: TimedDetector(plan=plan), same_as)

    bf16 = dataclasses.replace(fp32, detect_precision="bf16")
    return [
        det("fp32 channels-last (before)", fp32),
        det("fp32 ch-last, 2 threads", fp32, 2, "fp32 channels-last (before)"),
        det("fp32 contiguous", dataclasses.replace(fp32, channels_last=False)),
        det("bf16 autocast ch-last", bf16),
        det("bf16 autocast ch-last, 2 thr", bf16, 2, "bf16 autocast ch-last"),
    ]


def build(variants: list[Variant]) -> list[Variant]:
    """The variants this torch can build; the others keep the reason in ``error``."""
    ok = []
    for v in variants:
        t0 = time.perf_counter()
        try:
            v.built = v.make()  # type: ignore[misc]
        except Exception as exc:  # a variant this torch cannot build is reported, not fatal
            v.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            print(f"  {v.name}: cannot build ({v.error})", flush=True)
            continue
        v.setup_s = time.perf_counter() - t0
        ok.append(v)
    return ok


# -- timing -----------------------------------------------------------------------------


def time_interleaved(embed: list[Variant], detect: list[Variant], crops, smalls, rounds: int):
    """Round by round, every variant once: embedder on a batch, detector on the photos."""
    for v in embed + detect:  # warm-up (and torch.compile's first compile)
        v.plan.apply_threads()
        t0 = time.perf_counter()
        _call(v, crops, smalls[:1])
        v.setup_s += time.perf_counter() - t0
    for r in range(rounds):
        for v in embed:
            v.plan.apply_threads()
            t0 = time.perf_counter()
            v.built.embed(crops)  # type: ignore[attr-defined]
            v.times.append((time.perf_counter() - t0) * 1000 / len(crops))
        for v in detect:
            v.plan.apply_threads()
            d: TimedDetector = v.built  # type: ignore[assignment]
            d.spent = dict.fromkeys(d.spent, 0.0)
            t0 = time.perf_counter()
            for im in smalls:
                d.detect([im])
            v.times.append((time.perf_counter() - t0) * 1000 / len(smalls))
            for k, s in d.spent.items():
                v.nets.setdefault(k, []).append(s * 1000 / len(smalls))
        print(f"  round {r + 1}/{rounds}", flush=True)


def _call(v: Variant, crops, smalls) -> None:
    if isinstance(v.built, Embedder):
        v.built.embed(crops)
    else:
        v.built.detect(smalls)  # type: ignore[attr-defined]


# -- accuracy ---------------------------------------------------------------------------


def lfw_pairs(analyzer: Analyzer, cache: Path) -> tuple[np.ndarray, list, dict[str, int]]:
    """Central-face crops of every pairs.txt image (cached per detector variant)."""
    pairs = metrics.read_pairs(LFW / "pairs.txt")
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    if cache.exists():
        crops = np.load(cache)
    else:
        t0 = time.perf_counter()
        crops, _ = lfw.central_crops(analyzer, [LFW / "lfw-deepfunneled" / n for n in names])
        print(f"  {len(names)} pairs.txt images detected in {time.perf_counter() - t0:.0f} s")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, crops)
    return crops, pairs, {n: i for i, n in enumerate(names)}


def accuracy(vectors: np.ndarray, pairs, index) -> float:
    a = vectors[[index[p.a] for p in pairs]]
    b = vectors[[index[p.b] for p in pairs]]
    d = np.sum((a - b) ** 2, axis=1)
    return float(metrics.evaluate(d, np.array([p.same for p in pairs])).accuracy)


def cosines(vectors: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    c = np.sum(vectors * ref, axis=1)
    return float(c.min()), float(c.mean())


# -- end to end -------------------------------------------------------------------------


def analyzer_for(loaded: LoadedWeights, plan: inference.InferencePlan) -> Analyzer:
    embedder = Embedder(
        build_model(loaded, plan.device),
        preprocess=loaded.preprocess,
        centre=loaded.centre,
        plan=plan,
    )
    return Analyzer(
        Detector(plan=plan),
        embedder,
        threshold=loaded.threshold,
        threshold_source=loaded.threshold_source,
    )


def scan_rows(loaded, configs: dict[str, inference.InferencePlan], folder, rounds, tmp: Path):
    analyzers = {name: analyzer_for(loaded, plan) for name, plan in configs.items()}
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for r in range(rounds):
        for name, an in analyzers.items():
            an.plan.apply_threads()
            cpu0 = time.process_time()
            out = tmp / f"scan-{r}-{list(configs).index(name)}"
            out.mkdir()
            row = end_to_end(an, loaded, folder, out)
            row["cpu_s_per_photo"] = (time.process_time() - cpu0) / max(row["photos"], 1)
            runs[name].append(row)
            print(f"  {name}: {row['photos_per_s']:.2f} photos/s", flush=True)
    rows = {}
    for name, rs in runs.items():
        an = analyzers[name]
        an.plan.apply_threads()
        split = stage_times(an, sorted(folder.iterdir())[:10])
        rows[name] = {
            "photos": rs[0]["photos"],
            "faces": rs[0]["faces"],
            "photos_per_s": statistics.median(r["photos_per_s"] for r in rs),
            "cpu_s_per_photo": statistics.median(r["cpu_s_per_photo"] for r in rs),
            "runs": [round(r["photos_per_s"], 3) for r in rs],
            "plan": an.plan.as_dict(),
        } | {f"{k}_s": v for k, v in split.items()}
    return rows


def cluster_rows(loaded, configs: dict[str, inference.InferencePlan], tmp: Path) -> dict:
    """Scan the LFW people with >= 10 photos with each plan; the app's clustering scores."""
    root = tmp / "lfw10"
    root.mkdir()
    for person in sorted((LFW / "lfw-deepfunneled").iterdir()):
        if person.is_dir() and sum(1 for _ in person.glob("*.jpg")) >= 10:
            (root / person.name).symlink_to(person)
    out = {}
    for k, (name, plan) in enumerate(configs.items()):
        an = analyzer_for(loaded, plan)
        an.plan.apply_threads()
        t0 = time.perf_counter()
        (tmp / f"cl-{k}").mkdir()
        end_to_end(an, loaded, root, tmp / f"cl-{k}")
        lib_path = tmp / f"cl-{k}" / f"{root.name}.sqlite"
        faces = from_library(lib_path)
        row = cluster_run(faces, ClusterParams())
        row["scan_s"] = round(time.perf_counter() - t0, 1)
        out[name] = row
        print(f"  {name}: BCubed F {row['bcubed_f']:.4f} ({row['scan_s']} s)", flush=True)
    return out


# -- main -------------------------------------------------------------------------------


def scan_configs(fp32: inference.InferencePlan) -> dict[str, inference.InferencePlan]:
    """fp32 as before, the adopted plan, and the adopted plan's thread/decoder splits."""
    adopted = inference.choose("cpu")
    configs = {
        "fp32, 1 torch thread, 2 decoders (before)": dataclasses.replace(fp32, decode_workers=2),
        f"adopted, {adopted.torch_threads} thr, {adopted.decode_workers} dec": adopted,
    }
    n = inference.cores()
    for threads, workers in ((1, 1), (n, 1), (n, 2)):
        if (threads, workers) != (adopted.torch_threads, adopted.decode_workers):
            configs[f"adopted, {threads} thr, {workers} dec"] = dataclasses.replace(
                adopted, torch_threads=threads, decode_workers=workers
            )
    return configs


def run_variants(args, loaded, before: Analyzer, large: list[Path]) -> dict:
    """Speed of every variant (interleaved), then accuracy against fp32."""
    smalls = [load_image(p) for p in large[: args.detect_photos]]
    pair_crops, pairs, index = (None, [], {})
    if not args.skip_accuracy:
        pair_crops, pairs, index = lfw_pairs(before, args.cache / "lfw_pairs_crops_fp32.npy")
        crops, calib = pair_crops[:EMBED_BATCH], pair_crops[-64:]
    else:
        names = sorted((LFW / "lfw-deepfunneled").glob("*/*.jpg"))[:64]
        calib, _ = lfw.central_crops(before, names)
        crops = calib[:EMBED_BATCH]
    print("building variants", flush=True)
    wanted = embedder_variants(loaded, calib, args.compile) + detector_variants()
    built = build(wanted)
    emb = [v for v in built if isinstance(v.built, Embedder)]
    det = [v for v in built if isinstance(v.built, Detector)]
    print(f"timing: {args.rounds} rounds", flush=True)
    time_interleaved(emb, det, crops, smalls, args.rounds)
    rows_e: dict[str, dict] = {}
    ref = None
    for v in emb:
        row = {"ms_per_face": statistics.median(v.times), "setup_s": round(v.setup_s, 1)}
        row |= {"threads": v.plan.torch_threads, "note": v.note}
        if pair_crops is not None and v.same_as is None:
            t0 = time.perf_counter()
            v.plan.apply_threads()
            crops_v = pair_crops if v.full else pair_crops[-SAMPLE:]
            vec = v.built.embed(crops_v)  # type: ignore[attr-defined]
            ref = vec if ref is None else ref
            if v.full:
                row["lfw_accuracy"] = accuracy(vec, pairs, index)
            row["cos_min"], row["cos_mean"] = cosines(vec, ref[-len(vec) :])
            print(f"  {v.name}: {row} ({time.perf_counter() - t0:.0f} s)", flush=True)
        rows_e[v.name] = row
    for v in emb:
        if v.same_as and v.same_as in rows_e:
            for k in ("lfw_accuracy", "cos_min", "cos_mean"):
                if k in rows_e[v.same_as]:
                    rows_e[v.name][k] = rows_e[v.same_as][k]
    rows_d = {}
    for v in det:
        row = {"ms_per_photo": statistics.median(v.times), "threads": v.plan.torch_threads}
        row |= {f"{k}_ms": statistics.median(t) for k, t in v.nets.items()}
        rows_d[v.name] = row
    return {
        "embedder": rows_e,
        "detector": rows_d,
        "not_built": {v.name: v.error for v in wanted if v.error},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="variants,scan,cluster", help="which parts to run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--large-count", type=int, default=40, help="12 MP photos scanned end to end")
    ap.add_argument("--detect-photos", type=int, default=3, help="12 MP photos per timing round")
    ap.add_argument("--scan-rounds", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (minutes)")
    ap.add_argument("--skip-accuracy", action="store_true", help="variants: speed only")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "faceapp-bench")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    warnings.filterwarnings("ignore")  # torch.ao's deprecation notices
    loaded = resolve_weights()
    adopted = inference.choose("cpu")
    print(f"adopted here: {adopted.reason}")
    print(f"cpu: {inference.cpu_features()}")
    fp32_plan = inference.with_threads(inference.choose("cpu", "fp32"), 1)
    large = make_large_photos(args.cache / "large200", max(200, args.large_count))
    results: dict = {"adopted": adopted.as_dict(), "cpu": inference.cpu_features()}
    if "variants" in parts:
        results |= run_variants(args, loaded, analyzer_for(loaded, fp32_plan), large)
    configs = scan_configs(fp32_plan)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "scan" in parts:
            folder = args.cache / f"large{args.large_count}_scan"
            folder.mkdir(parents=True, exist_ok=True)
            for p in large[: args.large_count]:
                if not (folder / p.name).exists():
                    (folder / p.name).symlink_to(p)
            print("end to end on the 12 MP set", flush=True)
            results["scan_12mp"] = scan_rows(loaded, configs, folder, args.scan_rounds, tmp)
        if "cluster" in parts:
            print("clustering on scanned LFW (people with >= 10 photos)", flush=True)
            keep = list(configs)[:2]
            results["cluster_lfw10"] = cluster_rows(loaded, {k: configs[k] for k in keep}, tmp)
    out = RESULTS / "inference_variants.json"
    results = (json.loads(out.read_text()) if out.exists() else {}) | results  # other parts kept
    report(results)
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out}")


def _fmt(row: dict, key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


def report(results: dict) -> None:
    base_e = results.get("embedder", {}).get("fp32 (before)", {})
    print("\nembedder (InceptionResnetV1), batches of", EMBED_BATCH, "LFW crops")
    print(f"{'variant':<32}{'ms/face':>9}{'speed-up':>9}{'LFW acc':>9}{'d acc':>8}{'cos min':>9}")
    for name, r in results.get("embedder", {}).items():
        speed = base_e.get("ms_per_face", r["ms_per_face"]) / r["ms_per_face"]
        d_acc = (
            f"{r['lfw_accuracy'] - base_e['lfw_accuracy']:+.4f}"
            if "lfw_accuracy" in r and "lfw_accuracy" in base_e
            else "-"
        )
        print(
            f"{name:<32}{r['ms_per_face']:>9.2f}{speed:>8.2f}x{_fmt(r, 'lfw_accuracy', '.4f'):>9}"
            f"{d_acc:>8}{_fmt(r, 'cos_min', '.5f'):>9}"
        )
    base_d = results.get("detector", {}).get("fp32 channels-last (before)", {})
    print("\nMTCNN on 12 MP photos (1000 px detection copy), ms per photo")
    print(
        f"{'variant':<32}{'ms/photo':>9}{'speed-up':>9}{'pnet':>7}{'rnet':>7}{'onet':>7}{'LFW':>8}"
    )
    for name, r in results.get("detector", {}).items():
        speed = base_d.get("ms_per_photo", r["ms_per_photo"]) / r["ms_per_photo"]
        print(
            f"{name:<32}{r['ms_per_photo']:>9.1f}{speed:>8.2f}x{_fmt(r, 'pnet_ms', '.0f'):>7}"
            f"{_fmt(r, 'rnet_ms', '.0f'):>7}{_fmt(r, 'onet_ms', '.0f'):>7}"
        )
    for name, err in results.get("not_built", {}).items():
        print(f"{name}: not measured ({err})")
    print("\nend to end, 12 MP set (median of runs)")
    cols = ["photos_per_s", "cpu_s_per_photo", "decode_s", "detect_s", "embed_s"]
    print(f"{'config':<44}" + "".join(f"{c:>16}" for c in cols))
    for name, r in results.get("scan_12mp", {}).items():
        print(f"{name:<44}" + "".join(f"{r[c]:>16.3f}" for c in cols))
    if "cluster_lfw10" in results:
        print("\nclustering, scanned LFW people with >= 10 photos (app defaults)")
        for name, r in results["cluster_lfw10"].items():
            print(f"{name:<44}BCubed F {r['bcubed_f']:.4f}  pairwise F1 {r['pairwise_f1']:.4f}")


if __name__ == "__main__":
    main()
