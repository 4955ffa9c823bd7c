"""LFW verification accuracy of the app's pipeline, and the choices behind it.

Every image goes through the app's own detector and crop; the face nearest the
image centre is the pair's subject. Embeddings are cached (resumable) so the
variants below cost one pass:

- preprocessing: fixed standardisation vs per-image prewhitening (pairsDevTest);
- test-time flip: embedding of the mirrored crop added before normalising;
- mean-centring: the mean embedding of the training folds subtracted (FaceNet's
  evaluation protocol), angular distance;
- "app": what the app ships, the fixed centre in faceapp/engine/centres/ (the mean
  embedding of all LFW faces, written by --write-centre).

The threshold for the app is calibrated on pairsDevTrain (best accuracy).

    python bench/lfw_accuracy.py [--all] [--write-centre]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from faceapp.engine import lfw, metrics
from faceapp.engine.embed import Embedder
from faceapp.engine.images import load_image
from faceapp.engine.pipeline import Analyzer
from faceapp.engine.weights import CENTRES_DIR, SOURCE_DEFAULTS, build_model, resolve_weights

LFW = Path(os.environ.get("FACEAPP_LFW", Path(__file__).resolve().parents[2] / "shared/data/lfw"))
RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(__file__).resolve().parents[1] / ".venv" / "faceapp-test-data" / "lfw_embeddings.npz"
CHUNK = 256


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def embed_missing(
    paths: list[str], cache: dict[str, np.ndarray], analyzer: Analyzer, whiten: Embedder | None
) -> dict[str, np.ndarray]:
    """Embed (plain and mirrored, optionally prewhitened) what the cache lacks; saves as it goes."""
    have = set(cache.get("paths", np.array([], str)).tolist())
    todo = [p for p in paths if p not in have]
    keys = ["plain", "flipped"] + (["w_plain", "w_flipped"] if whiten else [])
    t0 = time.perf_counter()
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        images = [load_image(LFW / "lfw-deepfunneled" / p) for p in chunk]
        boxes = analyzer.detector.detect(images)
        crops, no_face = [], []
        for img, faces in zip(images, boxes, strict=True):
            pick = lfw.central_face(faces, img.width, img.height)
            face = lfw.centre_box(img.width, img.height) if pick is None else faces[pick]
            crops.append(analyzer.detector.crops(img, [face])[0])
            no_face.append(pick is None)
        crops = np.stack(crops)
        mirrored = np.ascontiguousarray(crops[:, :, ::-1])
        new = {
            "plain": analyzer.embedder.embed(crops),
            "flipped": analyzer.embedder.embed(mirrored),
        }
        if whiten:
            new |= {"w_plain": whiten.embed(crops), "w_flipped": whiten.embed(mirrored)}
        cache["paths"] = np.concatenate([cache.get("paths", np.array([], str)), chunk])
        cache["no_face"] = np.concatenate([cache.get("no_face", np.zeros(0, bool)), no_face])
        for k in keys:
            cache[k] = np.concatenate([cache.get(k, np.zeros((0, 512), np.float32)), new[k]])
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE.with_suffix(".tmp.npz"), **cache)
        os.replace(CACHE.with_suffix(".tmp.npz"), CACHE)
        done = start + len(chunk)
        rate = done / (time.perf_counter() - t0)
        print(f"  embedded {done}/{len(todo)} ({rate:.1f} img/s)", flush=True)
    return cache


def variants(cache: dict[str, np.ndarray], whitened: bool) -> dict[str, np.ndarray]:
    v = {"fixed": unit(cache["plain"]), "fixed+flip": unit(cache["plain"] + cache["flipped"])}
    if whitened and "w_plain" in cache:
        v["prewhiten"] = unit(cache["w_plain"])
        v["prewhiten+flip"] = unit(cache["w_plain"] + cache["w_flipped"])
    return v


def pair_distances(vectors, index, pairs, centre=None):
    a = vectors[[index[p.a] for p in pairs]]
    b = vectors[[index[p.b] for p in pairs]]
    if centre is not None:
        a, b = unit(a - centre), unit(b - centre)
    return np.sum((a - b) ** 2, axis=1)


def centred_report(vectors, index, pairs, same):
    """FaceNet's protocol: per fold, subtract the mean embedding of the training folds."""
    d = np.zeros(len(pairs))
    for train, test in metrics.folds(len(pairs)):
        used = sorted({index[pairs[i].a] for i in train} | {index[pairs[i].b] for i in train})
        centre = vectors[used].mean(axis=0)
        d[test] = pair_distances(vectors, index, [pairs[i] for i in test], centre)
    return metrics.evaluate(d, same)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="embed every LFW image into the cache")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--write-centre", action="store_true", help="write the app's centre file")
    args = ap.parse_args()
    sets = {
        name: metrics.read_pairs(LFW / f"{name}.txt")
        for name in ("pairsDevTrain", "pairsDevTest", "pairs")
    }
    loaded = resolve_weights()
    centre_file = CENTRES_DIR / SOURCE_DEFAULTS[loaded.source].centre
    loaded.centre = None  # the variants below are computed from raw embeddings
    analyzer = Analyzer.from_weights(loaded, args.device, flip=False)
    whiten = Embedder(
        build_model(loaded, analyzer.embedder.device.type),
        device=analyzer.embedder.device.type,
        preprocess="prewhiten",
        flip=False,
    )
    cache = load_cache(CACHE)
    dev = sorted({p.a for p in sets["pairsDevTest"]} | {p.b for p in sets["pairsDevTest"]})
    # the whitened variant is only compared on pairsDevTest, so embed those images first
    if "w_plain" not in cache:
        cache = embed_missing(list(dict.fromkeys(dev)), cache, analyzer, whiten)
    rest = sorted({p.a for s in sets.values() for p in s} | {p.b for s in sets.values() for p in s})
    if args.all:
        rest += sorted(
            p.relative_to(LFW / "lfw-deepfunneled").as_posix()
            for p in (LFW / "lfw-deepfunneled").glob("*/*.jpg")
        )
    whitened_have = len(cache.get("w_plain", []))
    cache = embed_missing(list(dict.fromkeys(rest)), cache, analyzer, None)
    index = {p: i for i, p in enumerate(cache["paths"].tolist())}
    if args.write_centre:
        np.save(centre_file, unit(cache["plain"]).mean(axis=0).astype(np.float32))
    app = unit(unit(cache["plain"]) - np.load(centre_file))
    rows = []
    for set_name, pairs in sets.items():
        same = np.array([p.same for p in pairs])
        d = pair_distances(app, index, pairs)
        rows.append(
            {
                "variant": "app (fixed, centre)",
                "set": set_name,
                **metrics.evaluate(d, same).as_dict(),
            }
        )
        if set_name == "pairsDevTrain":
            rows[-1]["calibrated_threshold"] = metrics.best_threshold(d, same)
    for name, vectors in variants(cache, True).items():
        for set_name, pairs in sets.items():
            if name.startswith("prewhiten"):
                if set_name != "pairsDevTest":
                    continue
                vectors_w = vectors[:whitened_have]
                idx = {p: i for p, i in index.items() if i < whitened_have}
            else:
                vectors_w, idx = vectors, index
            same = np.array([p.same for p in pairs])
            d = pair_distances(vectors_w, idx, pairs)
            rep = metrics.evaluate(d, same)
            rows.append({"variant": name, "set": set_name, **rep.as_dict()})
            if set_name == "pairsDevTrain":
                rows[-1]["calibrated_threshold"] = metrics.best_threshold(d, same)
            if set_name == "pairs" and not name.startswith("prewhiten"):
                rep = centred_report(vectors_w, idx, pairs, same)
                rows.append({"variant": name + "+centre", "set": set_name, **rep.as_dict()})
    no_face = int(sum(cache["no_face"][index[p]] for p in rest if p in index))
    print(f"images: {len(index)}, no face found (centre box used): {no_face}")
    cols = ["accuracy", "accuracy_std", "val_at_far_1e-3", "far", "auc", "threshold"]
    print(f"{'variant':<22}{'set':<14}" + "".join(f"{c:>16}" for c in cols))
    for r in rows:
        print(f"{r['variant']:<22}{r['set']:<14}" + "".join(f"{r[c]:>16.4f}" for c in cols))
        if "calibrated_threshold" in r:
            print(f"{'':<36}threshold calibrated on pairsDevTrain: {r['calibrated_threshold']:.4f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lfw_accuracy.json").write_text(json.dumps({"rows": rows, "no_face": no_face}))


if __name__ == "__main__":
    main()
