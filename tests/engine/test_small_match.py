"""Small faces measured against named people at their own resolution (small_match)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from faceapp.engine import people, review, small_match
from faceapp.engine.library import Library
from faceapp.engine.library_photos import NewFace


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 160), colour).save(out, "JPEG")
    return out.getvalue()


RED, BLUE = (200, 30, 30), (30, 30, 200)


def _library(tmp_path):
    """Anna (red crops) and Ben (blue crops), three 60 px faces each, and one unconfirmed
    14 px face whose plain embedding lies nearer Ben."""
    rng = np.random.default_rng(0)
    anna, ben = _unit(rng.normal(size=512)), _unit(rng.normal(size=512))
    lib = Library(tmp_path / "l.sqlite")
    model = lib.add_model(
        name="t", source="t", origin="t", sha256="0", preprocess="fixed",
        threshold=1.1, threshold_source="t",
    )  # fmt: skip
    ids: dict[str, list[int]] = {"anna": [], "ben": []}
    for k in range(6):
        who, centre, colour = ("anna", anna, RED) if k < 3 else ("ben", ben, BLUE)
        v = _unit(centre + rng.normal(size=512) * 0.02)
        face = NewFace((0.0, 0.0, 60.0, 60.0), [[0, 0]] * 5, 0.99, _jpeg(colour), v)
        photo = lib.store_photo(
            f"{k}.jpg", size=1, mtime_ns=1, width=100, height=100, content_hash=str(k),
            faces=[face], model_id=model,
        )  # fmt: skip
        ids[who] += [f.id for f in lib.faces_of_photo(photo)]
    small_v = _unit(0.3 * anna + 0.7 * ben + rng.normal(size=512) * 0.05)
    tiny = NewFace((0.0, 0.0, 14.0, 14.0), [[0, 0]] * 5, 0.9, _jpeg((90, 90, 90)), small_v)
    photo = lib.store_photo(
        "small.jpg", size=1, mtime_ns=1, width=100, height=100, content_hash="s",
        faces=[tiny], model_id=model,
    )  # fmt: skip
    small = lib.faces_of_photo(photo)[0].id
    lib.set_active_model(model)
    people.create_person(lib, "Anna", ids["anna"])
    people.create_person(lib, "Ben", ids["ben"])
    pid = dict(lib.conn.execute("SELECT name, id FROM people").fetchall())
    return lib, small, small_v, ids, pid


def _embed_like(small_v: np.ndarray, calls: list[np.ndarray]):
    """An embedder under test: a reddish crop (Anna's, degraded) embeds next to the
    small face, anything else far from it."""
    far = _unit(-small_v)

    def embed(crops: np.ndarray) -> np.ndarray:
        calls.append(crops)
        red = crops[..., 0].mean(axis=(1, 2)) > crops[..., 2].mean(axis=(1, 2))
        return np.stack([small_v if r else far for r in red]).astype(np.float32)

    return embed


def _suggestion(lib, face_id):
    return next((s for s in review.review(lib) if s.face_id == face_id), None)


def test_a_small_face_is_suggested_by_its_measurement_at_its_own_resolution(tmp_path):
    lib, small, small_v, _ids, pid = _library(tmp_path)
    before = _suggestion(lib, small)
    assert before is not None and before.person_name == "Ben"  # the plain distance
    assert small_match.pending(lib) == 2  # both people are candidates
    calls: list[np.ndarray] = []
    assert small_match.update(lib, _embed_like(small_v, calls), lib.active_model().id) == 2
    # each crop shrunk to the small face's scale (14 of 60 px) once, enlarged back
    assert calls[0].shape == (6, 160, 160, 3)
    after = _suggestion(lib, small)
    assert after.person_name == "Anna" and after.distance < 1e-3 and after.label == "likely"
    assert (
        small_match.pending(lib) == 0
        and small_match.update(lib, _embed_like(small_v, []), lib.active_model().id) == 0
    )
    # "not this person" holds for a measured face as for any other
    # and measured at its resolution, Ben is far: no suggestion is left
    people.reject_suggestion(lib, small, pid["Anna"])
    assert _suggestion(lib, small) is None
    lib.close()


def test_a_measurement_stops_holding_when_its_faces_leave_the_person(tmp_path):
    lib, small, small_v, ids, pid = _library(tmp_path)
    small_match.update(lib, _embed_like(small_v, []), lib.active_model().id)
    assert _suggestion(lib, small).person_name == "Anna"
    people.move_faces(lib, ids["anna"][:1], pid["Ben"])  # one compared face is Ben's now
    assert _suggestion(lib, small) is None  # Anna's measurement no longer holds
    assert small_match.pending(lib) == 2  # Anna again, and Ben, who has a nearer face now
    small_match.update(lib, _embed_like(small_v, []), lib.active_model().id)
    assert _suggestion(lib, small).person_name == "Anna"
    lib.close()


def _add_face(lib, name: str, side: float, colour, v: np.ndarray) -> int:
    face = NewFace((0.0, 0.0, side, side), [[0, 0]] * 5, 0.9, _jpeg(colour), v)
    photo = lib.store_photo(
        f"{name}.jpg", size=1, mtime_ns=1, width=100, height=100, content_hash=name,
        faces=[face], model_id=lib.active_model().id,
    )  # fmt: skip
    return lib.faces_of_photo(photo)[0].id


def test_a_measurement_is_made_again_when_the_person_gains_a_nearer_face(tmp_path):
    lib, small, small_v, _ids, pid = _library(tmp_path)
    model = lib.active_model().id
    small_match.update(lib, _embed_like(small_v, []), model)
    assert small_match.pending(lib) == 0
    new = _add_face(lib, "anna4", 60.0, RED, small_v)  # Anna's nearest face to it now
    people.move_faces(lib, [new], pid["Anna"])
    assert small_match.to_measure(lib) == [
        (small, pid["Anna"], tuple(sorted([*_ids["anna"], new])))
    ]
    small_match.update(lib, _embed_like(small_v, []), model)
    assert small_match.pending(lib) == 0
    lib.close()


def test_update_keeps_each_chunk_and_stops_when_cancelled(tmp_path, monkeypatch):
    lib, small, small_v, _ids, _pid = _library(tmp_path)
    other = _add_face(lib, "small2", 15.0, (90, 90, 90), small_v)
    monkeypatch.setattr(small_match, "CHUNK", 1)
    progress: list[tuple[int, int]] = []
    done = small_match.update(
        lib, _embed_like(small_v, []), lib.active_model().id,
        cancel=lambda: bool(progress), progress=progress.append,
    )  # fmt: skip
    assert done == 2 and progress == [(1, 2)]  # the first face's two people, then stopped
    kept = {r[0] for r in lib.conn.execute("SELECT face_id FROM small_matches")}
    assert kept == {min(small, other)}
    assert small_match.pending(lib) == 2  # the other face is measured next time
    lib.close()


def test_update_writes_nothing_for_another_model_than_the_active_one(tmp_path):
    lib, _small, small_v, _ids, _pid = _library(tmp_path)
    model = lib.active_model().id
    other = lib.add_model(
        name="u", source="u", origin="u", sha256="1", preprocess="fixed",
        threshold=1.1, threshold_source="u",
    )  # fmt: skip
    assert small_match.update(lib, _embed_like(small_v, []), other) == 0
    embed = _embed_like(small_v, [])

    def switching(crops: np.ndarray) -> np.ndarray:  # the user switches while it measures
        lib.set_meta("active_model", str(other))
        return embed(crops)

    assert small_match.update(lib, switching, model) == 0
    assert lib.conn.execute("SELECT COUNT(*) FROM small_matches").fetchone()[0] == 0
    lib.close()


def test_photos_gone_missing_change_the_plan_and_break_nothing(tmp_path):
    """A rescan that finds a compared face's photo deleted plans anew; a small face whose
    own photo went missing after the plan is left out of the measuring, not a crash."""
    lib, _small, small_v, _ids, pid = _library(tmp_path)
    model = lib.active_model().id
    planned = small_match.to_measure(lib)
    assert len(planned) == 2
    lib.mark_missing(["0.jpg"])  # one of Anna's faces
    assert [len(cs) for f, p, cs in planned if p == pid["Anna"]] == [3]
    replanned = small_match.to_measure(lib)
    assert [len(cs) for f, p, cs in replanned if p == pid["Anna"]] == [2]
    lib.mark_missing(["small.jpg"])  # the small face itself, after the plan
    lib.edited = False  # (naming Anna and Ben above was the user's edit)
    assert small_match.update(lib, _embed_like(small_v, []), model, todo=replanned) == 0
    assert not lib.edited  # derived data only: no after-edits backup for it
    lib.close()


def test_degrade_keeps_the_size_and_blurs():
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    low = small_match.degrade(crop, small_match._side(14 / 60))
    assert low.shape == crop.shape and low.dtype == np.uint8
    assert (
        np.abs(np.diff(low.astype(int), axis=1)).mean()
        < np.abs(np.diff(crop.astype(int), axis=1)).mean() / 3
    )
    assert small_match.degrade(crop, small_match._side(1.5)) is crop


def test_a_measured_distance_has_a_confidence_curve_of_its_own(tmp_path):
    """Blurred on both sides, strangers come nearer too: a measured 0.6 (threshold 1.1)
    is "unsure", where the plain curve would call that distance "likely"."""
    lib, small, small_v, _ids, _pid = _library(tmp_path)
    other = np.random.default_rng(5).normal(size=512)
    other = _unit(other - other @ small_v * small_v)
    at_06 = _unit(0.7 * small_v + np.sqrt(1 - 0.49) * other)  # squared distance 0.6

    def embed(crops: np.ndarray) -> np.ndarray:
        red = crops[..., 0].mean(axis=(1, 2)) > crops[..., 2].mean(axis=(1, 2))
        return np.stack([at_06 if r else _unit(-small_v) for r in red])

    small_match.update(lib, embed, lib.active_model().id)
    s = _suggestion(lib, small)
    assert s.person_name == "Anna" and abs(s.distance - 0.6) < 1e-3
    plain = review.lfw_calibration(1.1).confidence(0.6)
    assert plain >= review.LIKELY and s.label == "unsure"
    lib.close()
