"""Face detection and crops on real LFW faces (skipped when LFW is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import extract_face
from PIL import Image

from faceapp.engine.detect import Detector, FaceBox, crop_region, cut_crop
from faceapp.engine.images import load_image

LFW_SAMPLES = [
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "Colin_Powell/Colin_Powell_0001.jpg",
    "George_W_Bush/George_W_Bush_0010.jpg",
    "Serena_Williams/Serena_Williams_0001.jpg",
    "Tony_Blair/Tony_Blair_0005.jpg",
    "Gloria_Macapagal_Arroyo/Gloria_Macapagal_Arroyo_0001.jpg",
]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector("cpu")


@pytest.fixture(scope="module")
def reference() -> MTCNN:
    """facenet-pytorch's MTCNN as used for the published LFW figures."""
    return MTCNN(keep_all=True, select_largest=False, post_process=False, device="cpu")


@pytest.fixture(scope="module")
def samples(lfw_dir: Path) -> list[Path]:
    paths = [lfw_dir / s for s in LFW_SAMPLES]
    missing = [p for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"LFW sample images missing: {missing[0]}")
    return paths


def centre_face(faces: list[FaceBox], w: int, h: int) -> FaceBox:
    return min(
        faces,
        key=lambda f: (
            ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - h / 2) ** 2
        ),
    )


def test_lfw_faces_found_near_centre(detector: Detector, samples: list[Path]) -> None:
    decoded = [load_image(p) for p in samples]
    assert all(d.small.size == (250, 250) and d.scale_small == 1.0 for d in decoded)
    results = detector.detect(decoded)  # one batched call
    assert len(results) == len(samples)
    for path, d, faces in zip(samples, decoded, results, strict=True):
        assert faces, path.name
        assert all(f.prob >= detector.threshold for f in faces)
        assert [f.prob for f in faces] == sorted((f.prob for f in faces), reverse=True)
        f = centre_face(faces, d.width, d.height)
        x1, y1, x2, y2 = f.box
        assert f.prob > 0.95, path.name
        assert abs((x1 + x2) / 2 - 125) < 25 and abs((y1 + y2) / 2 - 125) < 30, f.box
        assert 60 < x2 - x1 < 160, f.box
        assert f.landmarks.shape == (5, 2) and f.landmarks.dtype == np.float32
        assert np.all((f.landmarks[:, 0] > x1) & (f.landmarks[:, 0] < x2)), path.name
        assert np.all((f.landmarks[:, 1] > y1) & (f.landmarks[:, 1] < y2)), path.name
        # eyes above nose above mouth; left eye left of right eye
        lm = f.landmarks
        assert lm[0, 0] < lm[1, 0] and max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])


def test_batched_equals_one_by_one(detector: Detector, samples: list[Path]) -> None:
    decoded = [load_image(p) for p in samples]
    batched = detector.detect(decoded)
    single = [detector.detect([d])[0] for d in decoded]
    for a, b in zip(batched, single, strict=True):
        assert len(a) == len(b)
        for fa, fb in zip(a, b, strict=True):
            assert np.allclose(fa.box, fb.box, atol=0.05)
            assert abs(fa.prob - fb.prob) < 1e-4


def test_same_boxes_as_facenet_pytorch(
    detector: Detector, reference: MTCNN, samples: list[Path]
) -> None:
    """The faster cascade finds exactly what facenet-pytorch's MTCNN finds."""
    for path in samples:
        img = Image.open(path).convert("RGB")
        (boxes, probs, points), *_ = detector.detect_raw([img])
        ref_boxes, ref_probs, ref_points = reference.detect(img, landmarks=True)
        assert boxes.shape == ref_boxes.shape
        assert np.allclose(boxes, ref_boxes.astype(np.float32), atol=1e-2)
        assert np.allclose(probs, np.asarray(ref_probs, dtype=np.float32), atol=1e-5)
        assert np.allclose(points, ref_points.astype(np.float32), atol=1e-2)


def test_torch_resampling_path_gives_the_same_faces(
    detector: Detector, samples: list[Path]
) -> None:
    """The path CUDA takes (torch area resampling), exercised on CPU."""
    plain = Detector("cpu", threads=0)
    plain.use_integral = False
    decoded = [load_image(p) for p in samples[:3]]
    for a, b in zip(detector.detect(decoded), plain.detect(decoded), strict=True):
        assert len(a) == len(b)
        for fa, fb in zip(a, b, strict=True):
            assert np.allclose(fa.box, fb.box, atol=1e-2) and abs(fa.prob - fb.prob) < 1e-5


def test_crops_match_facenet_pytorch_extract_face(
    detector: Detector, reference: MTCNN, samples: list[Path]
) -> None:
    for path in samples:
        d = load_image(path)
        faces = detector.detect([d])[0]
        crops = detector.crops(d, faces)
        assert crops.shape == (len(faces), 160, 160, 3) and crops.dtype == np.uint8
        img = Image.open(path).convert("RGB")
        for face, crop in zip(faces, crops, strict=True):
            ref = extract_face(img, np.array(face.box), image_size=160, margin=32)
            ref = ref.permute(1, 2, 0).numpy()  # float 0..255, HWC
            assert np.abs(crop.astype(np.float32) - ref).mean() < 0.5, path.name
        # ... and with facenet-pytorch's own boxes: the whole reference pipeline.
        ref_boxes, _ = reference.detect(img)
        f = centre_face(faces, d.width, d.height)
        rb = min(ref_boxes, key=lambda b: np.abs(b - np.array(f.box)).sum())
        ref = extract_face(img, rb, image_size=160, margin=32).permute(1, 2, 0).numpy()
        mine = detector.crops(d, [f])[0].astype(np.float32)
        assert np.abs(mine - ref).mean() < 0.5, path.name


def composite(
    face_path: Path, scale: float, pos: tuple[int, int]
) -> tuple[Image.Image, Image.Image]:
    face = Image.open(face_path).convert("RGB")
    face = face.resize((round(250 * scale),) * 2, Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (4000, 3000), (90, 110, 100))
    canvas.paste(face, pos)
    return face, canvas


@pytest.mark.parametrize(
    ("sample", "scale", "pos", "exif_rotated"),
    [
        (0, 1.0, (2600, 1400), False),
        (1, 2.0, (300, 2000), False),
        (2, 1.5, (1800, 300), True),
    ],
)
def test_face_on_12mp_canvas_maps_back(
    detector: Detector,
    samples: list[Path],
    tmp_path: Path,
    sample: int,
    scale: float,
    pos: tuple[int, int],
    exif_rotated: bool,
) -> None:
    face, canvas = composite(samples[sample], scale, pos)
    face_path = tmp_path / "face.png"
    face.save(face_path)
    fd = load_image(face_path)
    expected_face = centre_face(detector.detect([fd])[0], fd.width, fd.height)
    off = np.array([pos[0], pos[1], pos[0], pos[1]], dtype=np.float32)
    expected = np.array(expected_face.box) + off

    path = tmp_path / "canvas.jpg"
    if exif_rotated:  # stored sideways, displayed upright: boxes are in display pixels
        exif = Image.Exif()
        exif[0x0112] = 8
        canvas.transpose(Image.Transpose.ROTATE_270).save(path, quality=92, exif=exif.tobytes())
    else:
        canvas.save(path, quality=92)
    d = load_image(path)
    assert (d.width, d.height) == (4000, 3000) and max(d.small.size) <= 1024
    faces = detector.detect([d])[0]
    assert len(faces) == 1
    got = faces[0]
    tol = max(10.0, 0.06 * expected_face.size)
    assert np.abs(np.array(got.box) - expected).max() < tol, (got.box, expected)
    assert np.abs(got.landmarks - (expected_face.landmarks + off[:2])).max() < tol
    assert got.prob > 0.95

    # Crops come from a full-resolution decode for a face this small...
    crops = detector.crops(d, faces)
    assert crops.shape == (1, 160, 160, 3) and d.scale_image == 1.0
    full = load_image(path, full_resolution=True)
    assert np.array_equal(crops, detector.crops(full, faces))


def test_big_face_crop_from_draft_is_close_to_full(
    detector: Detector, samples: list[Path], tmp_path: Path
) -> None:
    _, canvas = composite(samples[3], 8.0, (1000, 500))  # a 2000 px portrait
    path = tmp_path / "portrait.jpg"
    canvas.save(path, quality=92)
    d = load_image(path)
    faces = detector.detect([d])[0]
    assert faces
    crops = detector.crops(d, faces)
    assert d.scale_image > 1  # no full-resolution decode was needed
    full = load_image(path, full_resolution=True)
    ref = detector.crops(full, faces)
    assert np.abs(crops.astype(np.float32) - ref).mean() < 1.5


def test_no_faces(detector: Detector, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    Image.new("RGB", (64, 64), (128, 128, 128)).save(tmp_path / "grey.png")
    Image.new("RGB", (10, 5), (128, 128, 128)).save(tmp_path / "tiny.png")  # below MTCNN's 12 px
    decoded = [load_image(tmp_path / n) for n in ("n.png", "grey.png", "tiny.png")]
    assert detector.detect(decoded) == [[], [], []]
    assert detector.crops(decoded[0], []).shape == (0, 160, 160, 3)
    assert detector.detect([]) == []


def test_threshold_and_min_face_size(samples: list[Path]) -> None:
    d = load_image(samples[0])
    assert Detector("cpu", threshold=1.01, threads=0).detect([d]) == [[]]
    # LFW faces are ~100 px: a 150 px minimum drops them from the first pass...
    assert Detector("cpu", min_face_size=150, threads=0, second_look=None).detect([d]) == [[]]
    # ... and the second look, which searches down to 150 / 2.5 px, finds them again.
    assert len(Detector("cpu", min_face_size=150, threads=0).detect([d])[0]) == 1


def test_crop_region_is_extract_face_geometry() -> None:
    # margin 32 at 160 px: the box grows by 32/128 = 25 % of its size, clipped, truncated.
    assert crop_region((100.0, 100.0, 228.0, 228.0), 1000, 1000) == (84, 84, 244, 244)
    assert crop_region((-10.0, 5.0, 118.0, 133.0), 100, 100) == (0, 0, 100, 100)
    img = Image.new("RGB", (50, 40), (1, 2, 3))
    assert cut_crop(img, 1.0, (0, 0, 50, 40)).size == (160, 160)
    assert cut_crop(img, 4.0, (0, 0, 200, 160)).getpixel((80, 80)) == (1, 2, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(samples: list[Path]) -> None:
    decoded = [load_image(p) for p in samples]
    cpu = Detector("cpu", threads=0).detect(decoded)
    gpu = Detector("cuda").detect(decoded)
    for a, b in zip(cpu, gpu, strict=True):
        assert len(a) == len(b)
        for fa, fb in zip(a, b, strict=True):
            assert np.allclose(fa.box, fb.box, atol=1.0)
