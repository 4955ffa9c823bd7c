"""A fast stand-in for the networks and the labelled LFW folders the scan tests share.

One "face" per photo (the central half), with an embedding made from the pixels: what
the tests check is the bookkeeping around MTCNN + FaceNet, not the networks.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np

from faceapp.engine import (
    album,
    people,
)
from faceapp.engine.detect import FaceBox
from faceapp.engine.library import Library
from faceapp.engine.pipeline import AnalyzedFace

PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld"]


class FakeAnalyzer:
    """One face per photo (the central half), embedding from the pixels: fast, deterministic.

    Photos of one LFW person are not close in this space, which does not matter: the
    tests label faces themselves and check that the labels survive.
    """

    threshold = 1.0
    threshold_source = "test"

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, images):
        out = []
        for im in images:
            self.calls += 1
            assert im.small.mode == "RGB" and im.image.mode == "RGB"
            assert im.width >= 1 and im.height >= 1 and max(im.small.size) <= 1024
            w, h = im.width, im.height
            box = (w * 0.25, h * 0.25, w * 0.75, h * 0.75)
            pixels = np.asarray(im.small.convert("L").resize((16, 16)), np.uint8)
            rng = np.random.default_rng(zlib.crc32(pixels.tobytes()))
            v = rng.standard_normal(512).astype(np.float32)
            face = FaceBox(box, np.zeros((5, 2), np.float32), 0.99)
            out.append(
                [AnalyzedFace(face, np.zeros((160, 160, 3), np.uint8), v / np.linalg.norm(v))]
            )
        return out


def use_test_model(lib: Library) -> None:
    """Register and activate the model version the fake analyzer's vectors belong to."""
    model = lib.add_model(
        name="test",
        source="random-dev",
        origin="test",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    lib.set_active_model(model)


def new_library(path: Path, root: Path) -> Library:
    lib = Library(path, root=root)
    use_test_model(lib)
    return lib


def lfw_folder(root: Path, lfw_dir: Path, per_person: int = 3) -> list[str]:
    rels = []
    for name in PEOPLE:
        (root / name).mkdir(parents=True, exist_ok=True)
        for src in sorted((lfw_dir / name).glob("*.jpg"))[:per_person]:
            shutil.copy2(src, root / name / src.name)
            rels.append(f"{name}/{src.name}")
    return rels


def labels(lib: Library) -> dict[int, str]:
    """Confirmed face -> person name, for every face (missing photos too)."""
    rows = lib.conn.execute(
        "SELECT f.id, pe.name FROM faces f JOIN people pe ON pe.id = f.person_id"
    ).fetchall()
    return dict(rows)


def face_by_content(lib: Library) -> dict[str, tuple[int, str | None]]:
    """content hash -> (face id, person name) for photos present on disk (one face each)."""
    rows = lib.conn.execute(
        "SELECT p.content_hash, f.id, pe.name FROM faces f JOIN photos p ON p.id = f.photo_id"
        " LEFT JOIN people pe ON pe.id = f.person_id WHERE p.status = 'ok'"
    ).fetchall()
    return {h: (fid, name) for h, fid, name in rows}


def label_people(lib: Library) -> None:
    """Name every LFW person from their photos' faces, and reject one face from one."""
    by_person: dict[str, list[int]] = {}
    for f in lib.faces():
        by_person.setdefault(f.photo_path.split("/")[0], []).append(f.id)
    for name, ids in sorted(by_person.items()):
        people.create_person(lib, name.replace("_", " "), ids)
    bush = album.parse_group_ref(lib, "George W Bush")[1]
    people.reject_faces(lib, [by_person["Tony_Blair"][0]], bush)
