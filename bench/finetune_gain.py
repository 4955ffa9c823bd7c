"""What fine-tuning on confirmed faces gains, on an album simulated from LFW.

The album: 60 people with at least 10 LFW photos (none of them in
pairsDevTest.txt), chosen at random (seed). Half of each person's photos are
"confirmed" by the user and fine-tuning trains on them (its own held-out split
for early stopping comes out of that half); the other half stays unlabelled in
the library and is what we measure on:

* trained people: VAL at FAR = 1e-3 (and the miss rate 1 - VAL) on all pairs of
  the unlabelled half, before and after;
* unseen people: LFW pairsDevTest.txt accuracy (10-fold protocol) before and after.

Everything goes through the engine API the app uses (``finetune.plan / train /
accept``) on a real library. Crops are the real weights' convention (MTCNN,
face nearest the image centre, facenet-pytorch ``extract_face`` margin 32 at
160 px, stored as the library's JPEG) and are cached, with the base model's
embeddings, under .venv/faceapp-test-data/.

    python bench/finetune_gain.py [--people 60] [--seed 0] [--epochs 30] [--device auto]
    python bench/finetune_gain.py --timing 1000     # time fine-tuning on 1,000 confirmed faces
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

LFW = Path(os.environ.get("FACEAPP_LFW", Path(__file__).resolve().parents[2] / "shared/data/lfw"))
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".venv" / "faceapp-test-data"
RESULTS = Path(__file__).resolve().parent / "results"
CROP_DIR = "lfw-crops-m32"
MARGIN = 32
SIZE = 160
JPEG_QUALITY = 92  # what pipeline.crop_to_jpeg stores
CENTRE_BOX_FRACTION = 0.4  # fallback box when no face is found (as faceapp.engine.lfw)


# -- LFW album --------------------------------------------------------------------------------


def lfw_people(min_photos: int = 10) -> dict[str, list[str]]:
    """Name -> relative image paths, for people with at least ``min_photos`` images."""
    out = {}
    for folder in sorted((LFW / "lfw-deepfunneled").iterdir()):
        files = sorted(f"{folder.name}/{p.name}" for p in folder.glob("*.jpg"))
        if len(files) >= min_photos:
            out[folder.name] = files
    return out


def read_pairs(name: str) -> list[tuple[str, str, bool]]:
    pairs = []
    for line in (LFW / name).read_text().split("\n")[1:]:
        p = line.split()
        if len(p) == 3:
            pairs.append(
                (f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[0]}/{p[0]}_{int(p[2]):04d}.jpg", True)
            )
        elif len(p) == 4:
            pairs.append(
                (f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[2]}/{p[2]}_{int(p[3]):04d}.jpg", False)
            )
    return pairs


def album(people: int = 60, seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """Name -> (confirmed half, unlabelled half) for ``people`` people unseen in pairsDevTest."""
    devtest = {a.split("/")[0] for a, _, _ in read_pairs("pairsDevTest.txt")}
    devtest |= {b.split("/")[0] for _, b, _ in read_pairs("pairsDevTest.txt")}
    candidates = {n: f for n, f in lfw_people().items() if n not in devtest}
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(candidates), people))
    out = {}
    for name in chosen:
        files = list(candidates[name])
        rng.shuffle(files)
        half = len(files) // 2
        out[name] = (sorted(files[:half]), sorted(files[half:]))
    return out


# -- crops (cached) ---------------------------------------------------------------------------


def _crop_path(rel: str) -> Path:
    return CACHE / CROP_DIR / rel


def _central(boxes: np.ndarray | None, width: int, height: int) -> np.ndarray | None:
    if boxes is None or len(boxes) == 0:
        return None
    centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
    d = ((centres - [width / 2, height / 2]) ** 2).sum(axis=1)
    return boxes[int(np.argmin(d))]


def _extract(img: Image.Image, box: Sequence[float]) -> np.ndarray:
    """facenet-pytorch ``extract_face(margin=32, image_size=160)`` on a PIL image, as uint8."""
    mx = MARGIN * (box[2] - box[0]) / (SIZE - MARGIN)
    my = MARGIN * (box[3] - box[1]) / (SIZE - MARGIN)
    b = (
        int(max(box[0] - mx / 2, 0)),
        int(max(box[1] - my / 2, 0)),
        int(min(box[2] + mx / 2, img.width)),
        int(min(box[3] + my / 2, img.height)),
    )
    return np.asarray(img.crop(b).resize((SIZE, SIZE), Image.BILINEAR), np.uint8)


def crops_jpeg(
    rels: Sequence[str], log: Callable[[str], None] = print, batch: int = 32
) -> dict[str, bytes]:
    """The stored-crop JPEG of each LFW image, detecting (and caching) the missing ones."""
    todo = sorted({r for r in rels if not _crop_path(r).exists()})
    if todo:
        import torch
        from facenet_pytorch import MTCNN

        torch.set_num_threads(max(1, torch.get_num_threads()))
        mtcnn = MTCNN(image_size=SIZE, margin=MARGIN, post_process=False, keep_all=True)
        t0 = time.perf_counter()
        no_face = 0
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            images = [Image.open(LFW / "lfw-deepfunneled" / r).convert("RGB") for r in chunk]
            same_size = len({im.size for im in images}) == 1
            if same_size:
                boxes, _ = mtcnn.detect(images)
            else:
                boxes = [mtcnn.detect(im)[0] for im in images]
            for rel, img, b in zip(chunk, images, boxes, strict=True):
                box = _central(b, img.width, img.height)
                if box is None:
                    no_face += 1
                    half = CENTRE_BOX_FRACTION * min(img.size) / 2
                    box = (
                        img.width / 2 - half,
                        img.height / 2 - half,
                        img.width / 2 + half,
                        img.height / 2 + half,
                    )
                buf = io.BytesIO()
                Image.fromarray(_extract(img, box)).save(buf, format="JPEG", quality=JPEG_QUALITY)
                path = _crop_path(rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(buf.getvalue())
                os.replace(tmp, path)
            done = min(start + batch, len(todo))
            rate = done / (time.perf_counter() - t0)
            log(f"  crops {done}/{len(todo)} ({rate:.1f}/s, no face: {no_face})")
    return {r: _crop_path(r).read_bytes() for r in rels}


def decode(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as im:
        return np.asarray(im.convert("RGB"), np.uint8)


# -- embeddings (cached per weights checksum) -------------------------------------------------


def embed_cached(
    tag: str, rels: Sequence[str], jpegs: dict[str, bytes], embedder, log=print
) -> dict[str, np.ndarray]:
    """Embeddings of crops keyed by path, cached in CACHE/<tag>.npz (tag names the weights)."""
    path = CACHE / f"lfw-emb-{tag}.npz"
    known: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as z:
            known = dict(zip(z["paths"].tolist(), z["vectors"], strict=True))
    todo = sorted({r for r in rels if r not in known})
    if todo:
        t0 = time.perf_counter()
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            vectors = embedder.embed(np.stack([decode(jpegs[r]) for r in chunk]))
            known.update(zip(chunk, vectors, strict=True))
            done = start + len(chunk)
            log(f"  embed {done}/{len(todo)} ({done / (time.perf_counter() - t0):.1f}/s)")
        keys = sorted(known)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, paths=np.array(keys), vectors=np.stack([known[k] for k in keys]))
        os.replace(tmp, path)
    return {r: known[r] for r in rels}


# -- the album as a library -------------------------------------------------------------------


def build_library(path: Path, weights, album_: dict, jpegs: dict, base_vectors: dict, flip: bool):
    """A library with one face per album photo; the confirmed half assigned to people."""
    from faceapp.engine.library import Library
    from faceapp.engine.library_photos import NewFace

    lib = Library(path)
    model_id = lib.add_model(
        name=f"{weights.source} base",
        source=weights.source,
        origin=str(weights.origin),
        sha256=weights.sha256,
        preprocess=weights.preprocess,
        threshold=weights.threshold,
        threshold_source=weights.threshold_source,
        metadata={"flip": flip, "centred": weights.centre is not None},
    )
    face_of: dict[str, int] = {}
    for confirmed, rest in album_.values():
        for rel in confirmed + rest:
            lib.store_photo(
                rel,
                size=1,
                mtime_ns=1,
                width=250,
                height=250,
                content_hash=rel,
                model_id=model_id,
                faces=[NewFace((0, 0, 250, 250), [[0, 0]] * 5, 1.0, jpegs[rel], base_vectors[rel])],
            )
    lib.set_active_model(model_id)
    with lib.transaction() as c:
        ids = dict(c.execute("SELECT p.path, f.id FROM faces f JOIN photos p ON p.id = f.photo_id"))
        for name, (confirmed, _rest) in album_.items():
            person = c.execute(
                "INSERT INTO people(name, created_at) VALUES (?, ?)", (name.replace("_", " "), 0.0)
            ).lastrowid
            c.executemany(
                "UPDATE faces SET person_id = ? WHERE id = ?", [(person, ids[r]) for r in confirmed]
            )
    face_of.update(ids)
    return lib, model_id, face_of


def verification(vectors: np.ndarray, labels: Sequence, threshold: float) -> dict:
    """VAL at FAR 1e-3 (threshold on all different pairs), miss rate, AUC, balanced accuracy;
    and what the library's threshold (base or recalibrated) accepts."""
    from faceapp.engine import pair_metrics

    m = pair_metrics.verification_metrics(vectors, labels)
    e = np.asarray(vectors, np.float64)
    lab = np.asarray(labels)
    iu = np.triu_indices(len(e), k=1)
    d = np.clip(2 - 2 * e @ e.T, 0, 4)[iu]
    same = (lab[:, None] == lab[None, :])[iu]
    return {
        "at_threshold": {
            "threshold": threshold,
            "tpr": float((d[same] < threshold).mean()),
            "far": float((d[~same] < threshold).mean()),
        },
        "val": m.val,
        "miss": m.miss,
        "far": m.far,
        "auc": m.auc,
        "balanced_accuracy": m.accuracy,
        "same_pairs": m.same_pairs,
        "diff_pairs": m.diff_pairs,
    }


def devtest(vectors: dict[str, np.ndarray], threshold: float) -> dict:
    """LFW pairsDevTest: 10-fold accuracy (threshold from the other folds) and VAL; and the
    accuracy at the library's threshold."""
    from faceapp.engine import metrics

    pairs = read_pairs("pairsDevTest.txt")
    a = np.stack([vectors[p[0]] for p in pairs]).astype(np.float64)
    b = np.stack([vectors[p[1]] for p in pairs]).astype(np.float64)
    d = ((a - b) ** 2).sum(axis=1)
    same = np.array([p[2] for p in pairs])
    rng = np.random.default_rng(0)  # pairsDevTest lists all same pairs first: shuffle folds
    order = rng.permutation(len(pairs))
    report = metrics.evaluate(d[order], same[order])
    return {
        "accuracy_at_threshold": {
            "threshold": threshold,
            "accuracy": float(((d < threshold) == same).mean()),
        },
        "accuracy": report.accuracy,
        "accuracy_std": report.accuracy_std,
        "val": report.val,
        "auc": report.auc,
        "pairs": report.pairs,
    }


def _progress_printer(prefix: str):
    last = [0.0]

    def show(p) -> None:
        now = time.perf_counter()
        if now - last[0] < 5 and getattr(p, "stage", "") != "switch":
            return
        last[0] = now
        fields = {k: v for k, v in vars(p).items() if k not in ("heldout",)}
        if getattr(p, "heldout", None) is not None:
            fields["heldout_val"] = round(p.heldout.val, 4)
        text = " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        )
        print(f"  {prefix} {text}", file=sys.stderr, flush=True)

    return show


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--trainable", default=None)
    parser.add_argument("--mining", default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--views", type=int, default=None)
    parser.add_argument(
        "--timing", type=int, default=0, help="only time fine-tuning on this many confirmed faces"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "finetune_gain.json")
    args = parser.parse_args(argv)

    os.environ.setdefault("FACEAPP_WEIGHTS_CACHE", str(CACHE))
    work = Path(tempfile.mkdtemp(prefix="finetune-gain-"))
    os.environ["FACEAPP_DATA_DIR"] = str(work)  # weights files and library stay temporary
    import torch

    from faceapp import config
    from faceapp.engine import finetune as ft
    from faceapp.engine import finetune_plan, network
    from faceapp.engine import weights as weights_mod
    from faceapp.engine.embed import Embedder

    device = config.resolve_device(args.device)
    weights = weights_mod.resolve_weights(allow_download=False)
    if weights.source == "random-dev":
        raise SystemExit("refusing to benchmark random weights")
    flip = False  # as the scan pipeline embeds (flip TTA off, centred where the weights say)
    embedder = Embedder(
        weights_mod.build_model(weights, device),
        device=device,
        preprocess=weights.preprocess,
        flip=flip,
        centre=weights.centre,
    )
    tag = f"{weights.sha256[:12]}-{'flip' if flip else 'noflip'}-"
    tag += "centred" if weights.centre is not None else "raw"
    options = finetune_plan.options_from(
        epochs=args.epochs,
        trainable=args.trainable,
        mining=args.mining,
        lr=args.lr,
        views=args.views,
        seed=args.seed,
        device=device,
    )
    album_ = album(args.people, args.seed)
    if args.timing:
        album_ = timing_album(album_, args.timing, args.seed)
    dev_rels = sorted({x for p in read_pairs("pairsDevTest.txt") for x in p[:2]})
    album_rels = sorted(r for c, u in album_.values() for r in c + u)
    print(
        f"album: {len(album_)} people, {len(album_rels)} photos; weights {weights.source}"
        f" ({weights.sha256[:12]}); device {device}, {torch.get_num_threads()} threads",
        file=sys.stderr,
    )
    jpegs = crops_jpeg(album_rels + ([] if args.timing else dev_rels))
    base = embed_cached(tag, album_rels + ([] if args.timing else dev_rels), jpegs, embedder)
    lib, base_id, face_of = build_library(work / "album.sqlite", weights, album_, jpegs, base, flip)
    the_plan = ft.plan(lib, options)
    print(f"plan: {the_plan.as_dict()}", file=sys.stderr)
    load_before = load_average()
    result = ft.train(lib, options, the_plan=the_plan, progress=_progress_printer("train"))
    load_after = load_average()
    timing = {
        "confirmed_faces": the_plan.train_faces + the_plan.heldout_faces,
        "train_faces": the_plan.train_faces,
        "heldout_faces": the_plan.heldout_faces,
        "people": len(the_plan.people),
        "train_seconds": round(result.seconds, 1),
        "prepare_seconds": round(result.prepare_seconds, 1),
        "fit_seconds": round(result.seconds - result.prepare_seconds, 1),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    out: dict = {"timing": timing, "options": result.as_dict()["options"]}
    if args.timing:
        print(json.dumps(timing, indent=1))
        path = args.out.with_name(args.out.stem + f"_timing{args.timing}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")
        return 0

    report = ft.accept(lib, result, progress=_progress_printer("accept"), device=device)
    new_id = report.model_id
    timing["reembed_seconds"] = round(report.seconds, 1)
    timing["reembed_faces"] = report.faces_embedded

    # trained people, the photos that were never confirmed
    rest = [(name, r) for name, (_c, u) in album_.items() for r in u]
    rest_ids = np.array([face_of[r] for _n, r in rest])
    labels = [n for n, _r in rest]

    def vectors_of(model_id: int) -> np.ndarray:
        ids, vecs = lib.embeddings(model_id)
        pos = {int(f): i for i, f in enumerate(ids)}
        return vecs[[pos[int(f)] for f in rest_ids]]

    trained_before = verification(vectors_of(base_id), labels, weights.threshold)
    trained_after = verification(vectors_of(new_id), labels, report.threshold)

    # unseen people: LFW pairsDevTest with the old and the new embedder
    new_embedder = Embedder(
        network.build_model(result.state_dict, device),
        device=device,
        preprocess=weights.preprocess,
        flip=flip,
        centre=result.centre,
    )
    t0 = time.perf_counter()
    after_dev = dict(
        zip(
            dev_rels,
            new_embedder.embed(np.stack([decode(jpegs[r]) for r in dev_rels])),
            strict=True,
        )
    )
    timing["devtest_embed_seconds"] = round(time.perf_counter() - t0, 1)
    unseen_before = devtest(base, weights.threshold)
    unseen_after = devtest(after_dev, report.threshold)

    miss_drop = 1 - trained_after["miss"] / trained_before["miss"] if trained_before["miss"] else 0
    acc_drop = (unseen_before["accuracy"] - unseen_after["accuracy"]) * 100
    out.update(
        {
            "album": {
                "people": len(album_),
                "photos": len(album_rels),
                "confirmed": sum(len(c) for c, _u in album_.values()),
                "unlabelled": len(rest),
                "seed": args.seed,
            },
            "weights": {
                "source": weights.source,
                "sha256": weights.sha256,
                "flip_tta": flip,
                "centred": weights.centre is not None,
            },
            "heldout": {"before": result.as_dict()["before"], "after": result.as_dict()["after"]},
            "trained_people": {"before": trained_before, "after": trained_after},
            "unseen_devtest": {"before": unseen_before, "after": unseen_after},
            "goals": {
                "miss_rate_relative_drop": round(miss_drop, 4),
                "miss_rate_goal_met": miss_drop >= 0.30,
                "devtest_accuracy_drop_points": round(acc_drop, 3),
                "devtest_goal_met": acc_drop <= 0.5,
            },
            "improved_on_heldout": result.improved,
            "threshold": {"value": report.threshold, "source": report.threshold_source},
            "history": result.as_dict()["history"],
        }
    )
    rows = [
        ("trained people: VAL@FAR=1e-3", trained_before["val"], trained_after["val"]),
        ("trained people: miss rate (1-VAL)", trained_before["miss"], trained_after["miss"]),
        ("trained people: ROC AUC", trained_before["auc"], trained_after["auc"]),
        ("unseen (pairsDevTest): accuracy", unseen_before["accuracy"], unseen_after["accuracy"]),
        ("unseen (pairsDevTest): VAL@FAR=1e-3", unseen_before["val"], unseen_after["val"]),
    ]
    rows += [
        (
            "trained people: TPR at the threshold",
            trained_before["at_threshold"]["tpr"],
            trained_after["at_threshold"]["tpr"],
        ),
        (
            "trained people: FAR at the threshold",
            trained_before["at_threshold"]["far"],
            trained_after["at_threshold"]["far"],
        ),
        (
            "unseen: accuracy at the threshold",
            unseen_before["accuracy_at_threshold"]["accuracy"],
            unseen_after["accuracy_at_threshold"]["accuracy"],
        ),
        ("threshold (base / recalibrated)", weights.threshold, report.threshold),
    ]
    if result.before and result.after:
        rows.append(("held-out confirmed: VAL@FAR=1e-3", result.before.val, result.after.val))
    print(f"\n{'metric':<40}{'before':>10}{'after':>10}")
    for name, b, a in rows:
        print(f"{name:<40}{b:>10.4f}{a:>10.4f}")
    print(
        f"\nmiss rate on trained people: -{miss_drop:.1%} relative (goal >= 30%)"
        f"\npairsDevTest accuracy change: {-acc_drop:+.2f} points (goal >= -0.5)"
        f"\nfine-tuning: {timing['confirmed_faces']} confirmed faces, {timing['train_seconds']} s"
        f" ({timing['prepare_seconds']} s trunk features, {timing['fit_seconds']} s training,"
        f" {timing['epochs_run']} epochs); re-embedding {report.faces_embedded} faces"
        f" {timing['reembed_seconds']} s; device {device}; load average {load_before}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


def timing_album(album_: dict, n: int, seed: int) -> dict:
    """Confirm exactly n faces of the album (at least 2 per person, the rest at random)."""
    rng = random.Random(seed)
    everything = {name: sorted(c + u) for name, (c, u) in album_.items()}
    chosen = {name: files[:2] for name, files in everything.items()}
    pool = [(name, f) for name, files in everything.items() for f in files[2:]]
    rng.shuffle(pool)
    for name, f in pool[: max(0, n - 2 * len(everything))]:
        chosen[name].append(f)
    return {
        name: (sorted(chosen[name]), sorted(set(files) - set(chosen[name])))
        for name, files in everything.items()
    }


if __name__ == "__main__":
    sys.exit(main())
