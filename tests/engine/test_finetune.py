"""Fine-tuning: triplet loss and mining by hand, training on LFW, versions and crash safety."""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from faceapp.engine import embed, finetune_plan, network, pair_metrics, training
from faceapp.engine import finetune as ft
from faceapp.engine import model_versions as mv
from faceapp.engine.files import sha256_file
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import NewFace
from faceapp.engine.progress import VersionProgress
from faceapp.engine.triplet import (
    batch_hard_triplets,
    batch_triplet_loss,
    pairwise_sq_distances,
    semihard_triplets,
    triplet_loss,
)

# -- triplet loss and mining, against hand-computed numbers ---------------------------------


def test_triplet_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.8, 0.6]] * 3)  # d(a, p) = 0.04 + 0.36 = 0.4
    n = torch.tensor([[0.0, 1.0], [0.6, 0.8], [0.8, -0.6]])  # d(a, n) = 2.0, 0.8, 0.4
    # max(0, 0.4 - 2.0 + 0.2) = 0; max(0, 0.4 - 0.8 + 0.2) = 0; max(0, 0.4 - 0.4 + 0.2) = 0.2
    assert triplet_loss(a, p, n).item() == pytest.approx(0.2 / 3, abs=1e-6)
    assert triplet_loss(a[:1], p[:1], n[2:], alpha=0.5).item() == pytest.approx(0.5, abs=1e-6)
    assert triplet_loss(a[:0], p[:0], n[:0]).item() == 0.0


def test_pairwise_sq_distances_match_brute_force():
    x = torch.nn.functional.normalize(torch.randn(7, 5, generator=torch.Generator().manual_seed(1)))
    d = pairwise_sq_distances(x)
    brute = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert torch.allclose(d, brute, atol=1e-6)
    assert (d >= 0).all() and torch.allclose(d.diagonal(), torch.zeros(7), atol=1e-6)


# Points on a line, so squared distances are easy to check by hand:
#   index: 0     1     2     3      4     5
#   x:     0.0   0.5   0.4   -0.6   0.65  -1.0
#   label: A     A     B     C      D     E
# Pair (0, 1): d_ap = 0.25. Negatives: d = 0.16 (2, hard), 0.36 (3, semi-hard: 0.25 < 0.36 <
#   0.45), 0.4225 (4, semi-hard), 1.0 (5, easy) -> the negative is 3 or 4, at random.
# Pair (1, 0): d_ap = 0.25. Negatives: d = 0.01 (2, hard), 1.21 (3, easy), 0.0225 (4, hard),
#   2.25 (5, easy) -> no semi-hard one; fallback: the least hard hard negative, 4 (0.0225).
LINE = torch.tensor([[0.0], [0.5], [0.4], [-0.6], [0.65], [-1.0]])
LABELS = torch.tensor([0, 0, 1, 2, 3, 4])


def test_semihard_miner_by_hand():
    seen = set()
    for seed in range(40):
        t = semihard_triplets(
            pairwise_sq_distances(LINE), LABELS, 0.2, torch.Generator().manual_seed(seed)
        )
        got = sorted(
            zip(t.anchors.tolist(), t.positives.tolist(), t.negatives.tolist(), strict=True)
        )
        assert len(got) == 2
        (a0, p0, n0), (a1, p1, n1) = got
        assert (a0, p0) == (0, 1) and n0 in (3, 4)
        assert (a1, p1, n1) == (1, 0, 4)
        assert (t.semihard, t.fallback_hard, t.dropped) == (1, 1, 0)
        seen.add(n0)
    assert seen == {3, 4}  # random among the semi-hard negatives, not always the same one


def test_semihard_miner_drops_pairs_beyond_the_margin():
    x = torch.tensor([[0.0], [0.1], [2.0], [-1.9]])
    t = semihard_triplets(pairwise_sq_distances(x), torch.tensor([0, 0, 1, 2]))
    # d_ap = 0.01; every negative is >= 3.61 > 0.21: both ordered pairs carry no loss
    assert len(t) == 0 and t.dropped == 2
    out = batch_triplet_loss(x, torch.tensor([0, 0, 1, 2]))
    assert out.triplets == 0 and out.loss.item() == 0.0


def test_semihard_loss_value_and_gradient():
    x = LINE.clone().requires_grad_(True)
    out = batch_triplet_loss(x, LABELS, generator=torch.Generator().manual_seed(0))
    # (1, 0, 4): 0.25 - 0.0225 + 0.2 = 0.4275; (0, 1, 3): 0.09 or (0, 1, 4): 0.0275
    assert out.loss.item() in (
        pytest.approx((0.4275 + 0.09) / 2, abs=1e-6),
        pytest.approx((0.4275 + 0.0275) / 2, abs=1e-6),
    )
    assert out.triplets == 2 and out.active == 2
    out.loss.backward()
    # d/dx1 of (x1 - x0)^2 - (x1 - x4)^2 for the (1, 0, 4) triplet is 2(0.5) - 2(-0.15) > 0:
    # the step -grad moves the anchor 1 back towards 0, away from the negative 4
    assert x.grad[1, 0].item() > 0


def test_batch_hard_miner_by_hand():
    t = batch_hard_triplets(pairwise_sq_distances(LINE), LABELS)
    got = sorted(zip(t.anchors.tolist(), t.positives.tolist(), t.negatives.tolist(), strict=True))
    # anchors with a positive: 0 and 1; their nearest negatives are both 2 (0.16 and 0.01)
    assert got == [(0, 1, 2), (1, 0, 2)]
    out = batch_triplet_loss(LINE, LABELS, mining="batch-hard")
    assert out.loss.item() == pytest.approx(((0.25 - 0.16 + 0.2) + (0.25 - 0.01 + 0.2)) / 2)


def test_unknown_mining_is_refused():
    with pytest.raises(ValueError, match="mining"):
        batch_triplet_loss(LINE, LABELS, mining="hardest")


def test_pk_batches_cover_every_face_with_p_people_of_k():
    labels = np.repeat(np.arange(7), [2, 3, 4, 5, 9, 12, 30])
    batches = training.pk_batches(labels, 4, 3, np.random.default_rng(0))
    seen = np.concatenate(batches)
    assert set(seen.tolist()) == set(range(len(labels)))
    for b in batches:
        people, counts = np.unique(labels[b], return_counts=True)
        assert len(people) == 4 and (counts == 3).all()


def test_balanced_threshold_and_metrics_by_hand():
    d = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3])
    same = np.array([True, True, False, True, False, False, False])
    t, acc = pair_metrics.balanced_threshold(d, same)
    # below 0.4: TPR 2/3, TNR 4/4 -> 0.833; below 0.8: TPR 3/3, TNR 3/4 -> 0.875 (best)
    assert acc == pytest.approx(0.875) and t == pytest.approx(0.8)
    # separated pairs: the middle of the gap, not just above the farthest same pair
    t, acc = pair_metrics.balanced_threshold(
        np.array([0.2, 0.4, 0.6, 1.0, 1.2]), np.array([1, 1, 0, 0, 0], bool)
    )
    assert acc == 1.0 and t == pytest.approx(0.5)
    t, _ = pair_metrics.balanced_threshold(
        np.array([0.2, 0.4, 1.0, 1.2]), np.array([1, 1, 0, 0], bool)
    )
    assert t == pytest.approx(0.7)
    # embeddings: two tight people far apart
    e = np.array([[1, 0], [0.995, 0.0998], [0, 1], [0.0998, 0.995]], np.float32)
    m = pair_metrics.verification_metrics(
        e / np.linalg.norm(e, axis=1, keepdims=True), [1, 1, 2, 2]
    )
    assert m.same_pairs == 2 and m.diff_pairs == 4 and m.val == 1.0 and m.accuracy == 1.0
    assert pair_metrics.verification_metrics(e, [1, 2, 3, 4]) is None  # no same-person pair


# -- small libraries ----------------------------------------------------------------------------


def _jpeg(crop: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def make_library(
    path: Path,
    crops: list[np.ndarray],
    labels: list[int | None],
    embedder=None,
    *,
    source: str = "random-dev",
    sha256: str = "0" * 64,
) -> tuple[Library, int]:
    """A library of one-face photos; labels are people indices (None: unconfirmed)."""
    lib = Library(path)
    model_id = lib.add_model(
        name="base",
        source=source,
        origin="test",
        sha256=sha256,
        preprocess="fixed",
        threshold=1.1,
        threshold_source="test",
        metadata={"flip": False, "centred": False},
    )
    rng = np.random.default_rng(0)
    if embedder is not None:
        vectors = embedder.embed(np.stack(crops))
    else:
        vectors = rng.normal(size=(len(crops), 512)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, crop in enumerate(crops):
        lib.store_photo(
            f"photo{i:04d}.jpg",
            size=1,
            mtime_ns=1,
            width=160,
            height=160,
            content_hash=f"h{i}",
            model_id=model_id,
            faces=[NewFace((0, 0, 160, 160), [[0, 0]] * 5, 0.99, _jpeg(crop), vectors[i])],
        )
    lib.set_active_model(model_id)
    people: dict[int, int] = {}
    with lib.transaction() as c:
        face_ids = [r[0] for r in c.execute("SELECT id FROM faces ORDER BY id")]
        for face_id, label in zip(face_ids, labels, strict=True):
            if label is None:
                continue
            if label not in people:
                people[label] = c.execute(
                    "INSERT INTO people(name, created_at) VALUES (?, 0)", (f"person {label}",)
                ).lastrowid
            c.execute("UPDATE faces SET person_id = ? WHERE id = ?", (people[label], face_id))
    return lib, model_id


def synthetic_crops(people: int, per_person: int, seed: int = 0) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (people, 160, 160, 3))
    crops, labels = [], []
    for k in range(people):
        for _ in range(per_person):
            crops.append(
                np.clip(protos[k] + rng.normal(0, 25, protos[k].shape), 0, 255).astype(np.uint8)
            )
            labels.append(k)
    return crops, labels


@pytest.fixture(scope="module")
def dev_state_dict():
    """Random weights: only for mechanics (shapes, files, crash safety), never for quality."""
    from facenet_pytorch import InceptionResnetV1

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return InceptionResnetV1(pretrained=None, classify=False).state_dict()


FAST = ft.FinetuneOptions(epochs=2, views=1, people_per_batch=3, faces_per_person=2, patience=3)
N_FACES = 18  # 3 people x 6 faces: 4 train + 2 held out each
# a made-up mean embedding: training and re-embedding must both centre on it
CENTRE = 0.3 * np.random.default_rng(3).normal(size=512).astype(np.float32) / np.sqrt(512)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dev_state_dict):
    """A small library and one training run on it, shared: each test works on a copy."""
    folder = tmp_path_factory.mktemp("template")
    crops, labels = synthetic_crops(3, 6)
    lib, _ = make_library(folder / "lib.sqlite", crops, labels)
    result = ft.train(lib, FAST, base_state_dict=dev_state_dict, base_centre=CENTRE)
    template = folder / "template.sqlite"
    target = sqlite3.connect(template)
    lib.conn.backup(target)
    target.close()
    lib.close()
    return template, result


def fresh_library(trained, tmp_path: Path) -> tuple[Library, Path, ft.FinetuneResult]:
    template, result = trained
    path = tmp_path / "lib.sqlite"
    shutil.copy(template, path)
    return Library(path), path, copy.copy(result)


def snapshot(lib: Library) -> tuple:
    ids, vectors = lib.embeddings()
    rows = lib.conn.execute("SELECT face_id, model_id, vector FROM embeddings ORDER BY 1, 2")
    return (
        lib.active_model().id,
        [m.id for m in lib.models()],
        ids.tolist(),
        vectors.tobytes(),
        rows.fetchall(),
    )


def weight_files() -> list[str]:
    return sorted(p for p in os.listdir(mv.models_dir()) if not p.startswith("."))


def test_plan_split_and_refusals(tmp_path):
    crops, labels = synthetic_crops(4, 6)
    labels[0] = None  # unconfirmed
    labels[18:24] = [3] + [None] * 5  # person 3: a single confirmed face -> skipped
    lib, _ = make_library(tmp_path / "lib.sqlite", crops, labels)
    p = ft.plan(lib)
    assert p.can_train and len(p.people) == 3 and p.skipped_people == 1
    assert [(x.faces, x.train, x.heldout) for x in p.people] == [(5, 4, 1), (6, 4, 2), (6, 4, 2)]
    assert not set(p.train_ids) & set(p.heldout_ids)
    assert ft.plan(lib) == p  # deterministic
    # big albums are capped, the people with the most faces giving way first
    capped = ft.plan(lib, ft.FinetuneOptions(max_train_faces=10, max_heldout_faces=4))
    assert [(x.train, x.heldout) for x in capped.people] == [(3, 1), (3, 2), (3, 2)]
    assert set(capped.train_ids) <= set(p.train_ids)  # held-out: never below 2 per person
    assert (
        finetune_plan._cap([1, 5, 9], 10) == 4
        and finetune_plan._cap([10, 10], 100, per_item=6) == 6
    )
    with lib.transaction() as c:
        c.execute(
            "UPDATE faces SET person_id = NULL WHERE person_id != (SELECT MIN(id) FROM people)"
        )
    p = ft.plan(lib)
    assert not p.can_train and "two people" in p.reason
    with pytest.raises(ft.FinetuneError, match="two people"):
        ft.train(lib, FAST)


def test_train_result_and_discard_leave_library_untouched(trained, tmp_path):
    lib, _, result = fresh_library(trained, tmp_path)
    before = snapshot(lib)
    assert result.state_dict is not None and 1 <= len(result.history) <= FAST.epochs
    assert result.before is not None and result.after is not None
    assert result.plan["train_faces"] == 12 and len(result.heldout_ids) == 6
    assert set(result.as_dict()) >= {"before", "after", "improved", "seconds", "history"}
    ft.discard(result)
    assert result.state_dict is None
    with pytest.raises(ft.FinetuneError, match="no model"):
        ft.accept(lib, result)
    assert snapshot(lib) == before and weight_files() == []


def test_cancelled_training_leaves_library_untouched(trained, tmp_path, dev_state_dict):
    lib, _, _ = fresh_library(trained, tmp_path)
    before = snapshot(lib)
    # cancelled while preparing: no model at all
    r = ft.train(lib, FAST, base_state_dict=dev_state_dict, cancel=lambda: True)
    assert r.cancelled and r.state_dict is None and r.stopped == "cancelled"
    # cancelled after the first training step: the best model so far, still only in memory
    steps: list[ft.TrainProgress] = []
    r = ft.train(
        lib,
        FAST,
        base_state_dict=dev_state_dict,
        progress=steps.append,
        cancel=lambda: any(x.stage == "train" and x.step >= 1 for x in steps),
    )
    assert r.cancelled and r.stopped == "cancelled" and len(r.history) == 1
    assert {x.stage for x in steps} == {"prepare", "train"}
    assert snapshot(lib) == before and weight_files() == []


def test_cancelled_accept_removes_the_half_built_version(trained, tmp_path):
    lib, _, result = fresh_library(trained, tmp_path)
    before = snapshot(lib)
    seen: list[VersionProgress] = []
    report = ft.accept(
        lib,
        result,
        progress=seen.append,
        cancel=lambda: any(s.stage == "embed" for s in seen),
        embed_batch_size=6,
    )
    assert report.cancelled and report.model_id is None
    assert snapshot(lib) == before and weight_files() == []


def test_accept_switches_and_old_versions_can_be_restored(trained, tmp_path):
    lib, _, result = fresh_library(trained, tmp_path)
    base = lib.active_model().id
    base_vectors = lib.embeddings(base)[1]
    stages: list[str] = []
    report = ft.accept(lib, result, progress=lambda p: stages.append(p.stage))
    new = report.model_id
    assert stages[0] == "save" and stages[-2:] == ["switch", "cluster"] and "embed" in stages
    assert report.clusters is not None  # activation re-groups the faces in the new space
    assert lib.active_model().id == new and lib.model(new).status == "ready"
    info = lib.model(new)
    assert info.source == "finetuned" and "random" in info.name and info.metadata["random_weights"]
    path = Path(info.path)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert sha256_file(path) == info.sha256
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == info.sha256
    # the scan pipeline loads the active version's file with the weights module's checks
    from faceapp.engine.state_dict import load_state_dict_file

    assert set(load_state_dict_file(path)) == set(result.state_dict)
    # ... with the centre training used, so new photos land in the same space
    assert np.allclose(mv.active_weights(lib).centre, CENTRE)
    assert np.allclose(mv.version_centre(info), CENTRE)
    # the stored embeddings are those training measured (centred, no flip; fp16 cache)
    held = result.heldout_ids
    model = network.build_model(result.state_dict, "cpu")
    cut = network.STAGES.index(FAST.trainable)
    crops = torch.from_numpy(embed.load_crops(lib, held)).permute(0, 3, 1, 2)
    feats = network.trunk_features(model, crops, cut, "fixed", "cpu", 8, lambda _done: None)
    measured = network.heldout_embeddings(model, feats[:, None], cut, False, CENTRE)
    ids, vectors = lib.embeddings()
    stored = vectors[np.searchsorted(ids, held)]
    assert np.abs(measured - stored).max() < 0.02
    ids, vectors = lib.embeddings()
    assert len(ids) == N_FACES and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    listed = {v.id: v for v in mv.versions(lib)}
    assert listed[new].active and listed[new].embedded_faces == N_FACES and listed[new].file_ok
    # back to the base version: its embeddings were kept untouched
    back = mv.activate(lib, base, device="cpu")
    assert back.activated and back.clusters is not None and lib.active_model().id == base
    assert np.array_equal(lib.embeddings()[1], base_vectors)
    with pytest.raises(mv.ModelError, match="active"):
        mv.remove_version(lib, base)
    # a changed weights file is refused rather than silently used
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(mv.ModelError, match="changed"):
        mv.activate(lib, new)
    assert lib.active_model().id == base
    mv.remove_version(lib, new)
    assert not path.exists() and [m.id for m in lib.models()] == [base]


def test_exception_during_reembedding_keeps_old_version(trained, tmp_path):
    lib, _, result = fresh_library(trained, tmp_path)
    before = snapshot(lib)

    def explode(p: VersionProgress) -> None:
        if p.stage == "embed" and p.done >= 6:
            raise RuntimeError("simulated crash while re-embedding")

    with pytest.raises(RuntimeError, match="simulated"):
        ft.accept(lib, result, progress=explode, embed_batch_size=6)
    assert snapshot(lib) == before and weight_files() == []  # the half-built version is gone


KILL_SCRIPT = textwrap.dedent(
    """
    import os, pickle, signal, sys
    from faceapp.engine import finetune as ft
    from faceapp.engine.library import Library
    lib = Library(sys.argv[1])
    with open(sys.argv[2], "rb") as f:
        result = pickle.load(f)
    def progress(p):
        if p.stage == "embed" and p.done >= 6:
            os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no rollback
    ft.accept(lib, result, progress=progress, embed_batch_size=6, device="cpu")
    """
)


def test_sigkill_during_reembedding_keeps_old_version_active(trained, tmp_path):
    lib, lib_path, result = fresh_library(trained, tmp_path)
    before = snapshot(lib)
    pickled = tmp_path / "result.pkl"
    pickled.write_bytes(pickle.dumps(result))
    lib.close()
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(lib_path), str(pickled)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    lib = Library(lib_path)
    assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert lib.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # the old version is active with all its embeddings, exactly as before
    assert lib.active_model().id == before[0]
    after = snapshot(lib)
    assert after[2:4] == before[2:4]
    # the killed build is left 'building', partly embedded, and cannot be switched to
    building = [m for m in lib.models() if m.status == "building"]
    assert len(building) == 1 and Path(building[0].path).is_file()
    partial = lib.embeddings(building[0].id)[0]
    assert 6 <= len(partial) < N_FACES
    with pytest.raises(LibraryError):
        lib.set_active_model(building[0].id)
    # cleanup (run by the next accept) removes it, as its process is gone
    assert mv.cleanup_incomplete(lib) == [building[0].id]
    assert snapshot(lib) == before and weight_files() == []


# -- command line -------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run one of this module's commands through its own parser (as faceapp.cli does)."""
    import argparse

    from faceapp.cli import CLIError, models
    from faceapp.cli import finetune as cli

    parser = argparse.ArgumentParser(prog="faceapp")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    models.register(sub)
    args = parser.parse_args(argv)
    try:
        code = int(args.handler(args) or 0)
    except CLIError as exc:
        return exc.code, str(exc)
    return code, capsys.readouterr().out


def test_cli_plan_models_use_and_remove(trained, tmp_path, capsys):
    lib, path, result = fresh_library(trained, tmp_path)
    code, out = run_cli(["finetune", "--plan", "--json", "--library", str(path)], capsys)
    plan = json.loads(out)
    assert code == 0 and plan["people"] == 3 and plan["train_faces"] == 12 and plan["can_train"]
    new = ft.accept(lib, result).model_id
    code, out = run_cli(["models", "--json", "--library", str(path)], capsys)
    listed = json.loads(out)["models"]
    assert code == 0 and [(m["id"], m["active"]) for m in listed] == [(1, False), (new, True)]
    assert listed[1]["source"] == "finetuned" and listed[1]["embedded_faces"] == N_FACES
    code, out = run_cli(["models", "--library", str(path), "use", "1"], capsys)
    assert code == 0 and lib.active_model().id == 1
    assert "*   1" in out and "regrouped" in out  # `models use` re-clusters, as the GUI does
    code, out = run_cli(["models", "--library", str(path), "remove", "1"], capsys)
    assert code == 1 and "active" in out
    code, out = run_cli(["models", "remove", str(new), "--library", str(path), "--json"], capsys)
    assert code == 0 and [m["id"] for m in json.loads(out)["models"]] == [1]


def test_cli_finetune_accepts_and_regroups_as_the_gui_does(tmp_path, capsys, monkeypatch):
    from faceapp.engine.weights import RANDOM_ENV, random_weights

    monkeypatch.setenv(RANDOM_ENV, "1")  # a base version the CLI can load: development weights
    crops, labels = synthetic_crops(3, 6)
    lib, base = make_library(tmp_path / "lib.sqlite", crops, labels, sha256=random_weights().sha256)
    argv = ["finetune", "--epochs", "1", "--force", "--device", "cpu", "--json"]
    code, out = run_cli([*argv, "--library", str(lib.path)], capsys)
    report = json.loads(out)
    assert code == 0 and report["accepted"] and report["model_version"] != base
    assert report["clusters"] is not None  # re-clustered in the new embedding space
    assert lib.active_model().id == report["model_version"]


def test_cli_refuses_a_library_without_enough_people(tmp_path, capsys):
    crops, _ = synthetic_crops(2, 3)
    lib, _ = make_library(tmp_path / "lib.sqlite", crops, [0, 0, 0, None, None, None])
    code, message = run_cli(["finetune", "--library", str(lib.path)], capsys)
    assert code == 2 and "two people" in message


# -- a real training run: LFW crops, real weights ---------------------------------------------


def _lfw_people(lfw_root: Path, count: int, photos: int) -> dict[str, list[Path]]:
    """The first ``count`` LFW people (by name) with ``photos`` images, none in pairsDevTest."""
    from faceapp.engine.metrics import read_pairs

    test_pairs = read_pairs(lfw_root / "pairsDevTest.txt")
    in_devtest = {path.split("/")[0] for p in test_pairs for path in (p.a, p.b)}
    out: dict[str, list[Path]] = {}
    for folder in sorted((lfw_root / "lfw-deepfunneled").iterdir()):
        files = sorted(folder.glob("*.jpg"))
        if folder.name not in in_devtest and len(files) >= photos:
            out[folder.name] = files[:photos]
            if len(out) == count:
                break
    return out


@pytest.mark.slow
def test_real_training_lowers_loss_and_raises_heldout_val(lfw_root, real_weights, tmp_path):
    """16 LFW people, 12 confirmed faces each; a few epochs on the real weights.

    The loss must fall, held-out VAL must rise, and so must VAL on each person's
    other photos, which neither training nor early stopping saw. The crops are the
    app's own (its detector, the central face of each LFW image).
    """
    from faceapp.engine import lfw, pipeline

    people = _lfw_people(lfw_root, 16, 18)
    names = sorted(people)
    analyzer = pipeline.Analyzer.from_weights(real_weights, "cpu")
    paths = [p for n in names for p in people[n]]
    crop_array, _ = lfw.central_crops(analyzer, paths)
    crops = list(crop_array)
    labels = [lab for i in range(len(names)) for lab in [i] * 12 + [None] * 6]
    unseen = {n: people[n][12:] for n in names}
    lib, _ = make_library(
        tmp_path / "lib.sqlite",
        crops,
        labels,
        source=real_weights.source,
        sha256=real_weights.sha256,
    )
    options = ft.FinetuneOptions(epochs=6, patience=6, views=2, people_per_batch=8)
    result = ft.train(
        lib, options, base_state_dict=real_weights.state_dict, base_centre=real_weights.centre
    )
    losses = [h.loss for h in result.history]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    assert result.after.val > result.before.val and result.improved

    # photos of the same people that neither training nor early stopping saw
    model = network.build_model(real_weights.state_dict, "cpu")
    cut = network.STAGES.index(ft.TRAINABLE[options.trainable])
    other = np.stack([c for c, lab in zip(crops, labels, strict=True) if lab is None])
    other = torch.from_numpy(other).permute(0, 3, 1, 2)
    feats = network.trunk_features(model, other, cut, "fixed", "cpu", 32, lambda _done: None)[
        :, None
    ]
    other_labels = [i for i, n in enumerate(names) for _ in unseen[n]]

    def measured() -> ft.HeldoutMetrics:
        emb = network.heldout_embeddings(model, feats, cut, False, real_weights.centre)
        return pair_metrics.verification_metrics(emb, other_labels)

    before = measured()
    model.load_state_dict(result.state_dict)
    after = measured()
    assert after.val > before.val and after.auc > before.auc, (before, after)
