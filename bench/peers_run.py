"""One peer pipeline over a folder of photos, run by bench/peers.py inside the peers' venv.

This file imports nothing of the app: it runs with the packages of bench/.peers-venv
(face_recognition + dlib-bin + hdbscan, or facenet-pytorch + scikit-learn) and writes
one JSON file: the faces it found (box in the photo's pixels, cluster label, -1 for
noise), the seconds from the first photo to the last cluster label (the models are
loaded before), and its peak memory (RSS).

    python bench/peers_run.py librephotos FOLDER OUT.json
    python bench/peers_run.py facenet FOLDER OUT.json --weights STATE_DICT.pt
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SUFFIXES = {".jpg", ".jpeg", ".png"}

# LibrePhotos (github.com/LibrePhotos/librephotos at e675a0dc, 2024-10-24):
# - api/models/photo.py `_generate_thumbnail`: faces are found on "thumbnails_big", made by
#   api/thumbnails.py `createThumbnail` as pyvips.Image.thumbnail(path, 10000,
#   height=1080, size=Size.DOWN): 1080 px high, never enlarged. Here Pillow with JPEG
#   draft (shrink-on-load, as pyvips does) and a Lanczos resize; no WebP round trip.
# - service/face_recognition/main.py: face_recognition.face_locations(image,
#   model=model) with the user's model, default "HOG" (api/models/user.py
#   `face_recognition_model`), so number_of_times_to_upsample=1; then
#   face_recognition.face_encodings(image, known_face_locations=...) (num_jitters=1,
#   the "small" 5-point landmark model) on the same thumbnail.
# - api/face_classify.py `create_all_clusters`: HDBSCAN(min_cluster_size=2 (4 above
#   1,000 faces, 8 above 10,000, 16 above 100,000 when the user set none),
#   min_samples=1, cluster_selection_epsilon=0.05 (api/models/user.py defaults),
#   metric="euclidean") on the 128-d encodings; label -1 is the unknown cluster.
THUMB_HEIGHT = 1080


def librephotos_min_cluster_size(faces: int) -> int:
    """api/face_classify.py: the default grows with the number of faces."""
    for above, size in ((100_000, 16), (10_000, 8), (1_000, 4)):
        if faces > above:
            return size
    return 2


def thumbnail(path: Path) -> tuple[np.ndarray, float]:
    """The 1080 px high "big thumbnail" (RGB array) and its scale back to the photo."""
    with Image.open(path) as img:
        w, h = img.size
        if h <= THUMB_HEIGHT:
            return np.asarray(img.convert("RGB")), 1.0
        size = (max(1, round(w * THUMB_HEIGHT / h)), THUMB_HEIGHT)
        img.draft("RGB", size)
        small = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        return np.asarray(small), h / THUMB_HEIGHT


def run_librephotos(photos: list[Path]) -> tuple[list[dict], dict, float]:
    import face_recognition  # loads dlib's models
    from hdbscan import HDBSCAN

    t = time.perf_counter()
    faces, encodings = [], []
    for path in photos:
        image, scale = thumbnail(path)
        locations = face_recognition.face_locations(image, model="hog")
        for (top, right, bottom, left), enc in zip(
            locations,
            face_recognition.face_encodings(image, known_face_locations=locations),
            strict=True,
        ):
            box = [left * scale, top * scale, right * scale, bottom * scale]
            faces.append({"photo": path.name, "box": box})
            encodings.append(enc)
    settings = {
        "min_cluster_size": librephotos_min_cluster_size(len(faces)),
        "min_samples": 1,
        "cluster_selection_epsilon": 0.05,
        "metric": "euclidean",
    }
    if len(faces) > settings["min_cluster_size"]:
        labels = HDBSCAN(**settings).fit(np.array(encodings)).labels_
    else:
        labels = np.full(len(faces), -1)
    for face, label in zip(faces, labels, strict=True):
        face["label"] = int(label)
    seconds = time.perf_counter() - t
    return faces, settings | {"detector": "dlib HOG, upsample 1", "image": "1080 px high"}, seconds


# The stock facenet-pytorch pipeline as its README shows it (github.com/timesler/facenet-pytorch,
# README "Quick start"): MTCNN(image_size=160, margin=0, keep_all=True) on the full photo,
# InceptionResnetV1(...).eval() on the aligned crops (here under torch.no_grad()), the
# MTCNN defaults otherwise (min_face_size=20, thresholds 0.6/0.7/0.7, post_process:
# fixed standardisation). The weights are the app's (a state dict file: VGGFace2 needs a
# download). Clustering as FaceNet's own recipe does it (davidsandberg/facenet
# contributed/cluster.py): sklearn DBSCAN on the Euclidean distances with its defaults
# eps=1.0 (`--cluster_threshold`) and min_samples=1 (`--min_cluster_size`): no noise,
# a face with no neighbour within 1.0 is a cluster of one.
def run_facenet(photos: list[Path], weights: Path) -> tuple[list[dict], dict, float]:
    import torch
    from facenet_pytorch import MTCNN, InceptionResnetV1
    from sklearn.cluster import DBSCAN

    mtcnn = MTCNN(image_size=160, margin=0, keep_all=True, device="cpu")
    resnet = InceptionResnetV1(pretrained=None).eval()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    resnet.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    t = time.perf_counter()
    faces, vectors = [], []
    with torch.no_grad():
        for path in photos:
            img = Image.open(path).convert("RGB")
            boxes, _ = mtcnn.detect(img)  # what mtcnn(img) does, keeping the boxes
            if boxes is None:
                continue
            crops = mtcnn.extract(img, boxes, None)
            vectors.append(resnet(crops).numpy())
            faces += [{"photo": path.name, "box": [float(v) for v in b]} for b in boxes]
    settings = {"algorithm": "sklearn DBSCAN", "eps": 1.0, "min_samples": 1}
    if faces:
        labels = DBSCAN(eps=1.0, min_samples=1).fit(np.concatenate(vectors)).labels_
        for face, label in zip(faces, labels, strict=True):
            face["label"] = int(label)
    seconds = time.perf_counter() - t
    settings |= {"detector": "MTCNN on the full photo", "weights": str(weights)}
    return faces, settings, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("peer", choices=["librephotos", "facenet"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--weights", type=Path, help="InceptionResnetV1 state dict (facenet)")
    args = ap.parse_args()
    photos = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if args.peer == "librephotos":
        faces, settings, seconds = run_librephotos(photos)
    else:
        if args.weights is None:
            sys.exit("facenet needs --weights")
        faces, settings, seconds = run_facenet(photos, args.weights)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {
        "photos": len(photos),
        "seconds": seconds,
        "peak_rss_mb": peak_kb / 1024,
        "settings": settings,
        "faces": faces,
    }
    args.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
