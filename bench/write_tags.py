"""How long writing face tags takes: sidecars and --embed on N real LFW JPEGs.

Makes N JPEGs (LFW photos with camera EXIF) and a library with one confirmed face
per photo, then times ``tag_write.write_tags`` writing sidecars, then embedding into
the JPEGs (each file written to a temporary file, synced, read back, renamed; one
library transaction per photo), then a second embed run that finds everything up to
date. Reading the tags back as a scan does (``face_tags.read_tags``) is timed too.

    python bench/write_tags.py [--photos 200]

Prints a table and writes bench/results/write_tags.json. Figures on a shared
machine are noisy (the syncs wait for the disk): compare runs side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LFW = Path(os.environ.get("FACEAPP_LFW", ROOT.parent / "shared" / "data" / "lfw"))
RESULTS = ROOT / "bench" / "results"
BOX = (72.0, 68.0, 178.0, 190.0)  # the face of a deep-funneled LFW photo


def make_album(root: Path, n: int) -> dict[str, str]:
    root.mkdir(parents=True)
    out = {}
    for i, src in enumerate(sorted((LFW / "lfw-deepfunneled").glob("*/*_0001.jpg"))[:n]):
        exif = Image.Exif()
        exif[0x010F], exif[0x0112] = "Canon", 1
        name = f"IMG_{i:04d}.jpg"
        Image.open(src).save(root / name, "JPEG", quality=90, exif=exif.tobytes())
        out[name] = src.parent.name.replace("_", " ")
    return out


def make_library(root: Path, names: dict[str, str]):
    from faceapp.engine import library, library_photos
    from faceapp.engine.scan_decode import file_hash

    lib = library.Library(root.parent / "lib.sqlite", root=root)
    model = lib.add_model(
        name="bench",
        source="user",
        origin="-",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=1.0,
        threshold_source="bench",
    )
    lib.set_active_model(model)
    people: dict[str, int] = {}
    vector = np.ones(512, np.float32) / np.sqrt(512)
    for rel, who in names.items():
        st = (root / rel).stat()
        photo = lib.store_photo(
            rel,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            width=250,
            height=250,
            content_hash=file_hash(root / rel),
            model_id=model,
            faces=[library_photos.NewFace(BOX, [], 1.0, b"jpeg", vector)],
        )
        with lib.transaction() as c:
            if who not in people:
                people[who] = int(
                    c.execute(
                        "INSERT INTO people(name, created_at) VALUES (?, 0)", (who,)
                    ).lastrowid
                )
            c.execute("UPDATE faces SET person_id = ? WHERE photo_id = ?", (people[who], photo))
    return lib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    args = parser.parse_args()
    if not (LFW / "lfw-deepfunneled").is_dir():
        print(f"LFW not found at {LFW} (set FACEAPP_LFW)")
        return 2
    from faceapp.engine import face_tags, tag_write

    work = Path(tempfile.mkdtemp(prefix="write-tags-bench-"))
    root = work / "photos"
    names = make_album(root, args.photos)
    lib = make_library(root, names)
    rows = []

    def timed(label: str, fn) -> None:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "step": label,
                "photos": len(names),
                "seconds": round(seconds, 3),
                "ms_per_photo": round(1000 * seconds / len(names), 2),
                "result": result,
            }
        )

    timed("write sidecars", lambda: tag_write.write_tags(lib).written)
    timed("read tags (scan)", lambda: sum(bool(face_tags.read_tags(root / r)[0]) for r in names))
    timed("embed into JPEGs", lambda: tag_write.write_tags(lib, embed=True).written)
    timed("embed again (up to date)", lambda: tag_write.write_tags(lib, embed=True).skipped)
    print(f"{'step':<26} {'photos':>6} {'seconds':>8} {'ms/photo':>9} {'files':>6}")
    for r in rows:
        print(
            f"{r['step']:<26} {r['photos']:>6} {r['seconds']:>8.2f} {r['ms_per_photo']:>9.2f}"
            f" {r['result']:>6}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "write_tags.json").write_text(json.dumps(rows, indent=2))
    lib.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
