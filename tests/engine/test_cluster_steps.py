"""Splitting a loose cluster keeps its main person (real FaceNet embeddings of LFW)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceapp.engine import pipeline
from faceapp.engine.cluster_steps import split_loose_clusters
from faceapp.engine.clustering import ClusterParams

MAIN, OTHER = "Colin_Powell", "Donald_Rumsfeld"


@pytest.fixture(scope="module")
def embedded(lfw_dir: Path, real_weights) -> tuple[np.ndarray, list[str], float]:
    """5 photos of one person and 3 of another, embedded by the app (the face nearest
    each image's centre), and the model's verification threshold."""
    analyzer = pipeline.Analyzer.from_weights(real_weights, "cpu")
    vectors, who = [], []
    for name, count in ((MAIN, 5), (OTHER, 3)):
        for path in sorted((lfw_dir / name).glob("*.jpg"))[:count]:
            _, faces = analyzer.analyze_path(path)
            centre = min(faces, key=lambda a: abs((a.face.box[0] + a.face.box[2]) / 2 - 125))
            vectors.append(centre.embedding)
            who.append(name)
    return np.stack(vectors).astype(np.float32), who, analyzer.threshold


def test_a_mixed_cluster_keeps_its_main_person(embedded) -> None:
    x, who, threshold = embedded
    max_mean_sq = ClusterParams().cohesion_ratio * threshold
    labels = np.zeros(len(x), np.int64)  # HDBSCAN hung the second person on the first
    removed, kept = split_loose_clusters(x, labels, max_mean_sq, min_size=4)
    main = np.array([w == MAIN for w in who])
    assert kept == 1 and removed == 3
    assert len(set(labels[main])) == 1 and labels[main][0] >= 0  # still one group
    assert (labels[~main] == -1).all()  # only the other person's faces go to Unknown


def test_a_tight_cluster_is_left_alone(embedded) -> None:
    x, who, threshold = embedded
    main = np.array([w == MAIN for w in who])
    labels = np.where(main, 0, -1)
    before = labels.copy()
    max_mean_sq = ClusterParams().cohesion_ratio * threshold
    assert split_loose_clusters(x, labels, max_mean_sq, min_size=4) == (0, 0)
    assert (labels == before).all()


def test_faces_that_fit_no_part_all_leave(embedded) -> None:
    """Too few faces of anyone for a cluster: the whole loose group goes to Unknown."""
    x, _, threshold = embedded
    pick = [0, 1, 5, 6]  # two of each
    labels = np.zeros(4, np.int64)
    max_mean_sq = ClusterParams().cohesion_ratio * threshold
    assert split_loose_clusters(x[pick], labels, max_mean_sq, min_size=4) == (4, 0)
    assert (labels == -1).all()


@pytest.mark.slow
def test_an_unnamed_group_stays_when_the_others_are_named_and_it_is_regrouped(
    lfw_dir: Path, real_weights, tmp_path: Path
) -> None:
    """A small library: once two people are named, the unconfirmed faces are one person
    (and a few strangers). HDBSCAN alone left them all as noise, so the group the user
    had seen vanished on the next regroup (a rescan); it stays, with the same id."""
    import shutil

    from faceapp.engine import album, cluster, library, model_versions, naming

    root = tmp_path / "photos"
    root.mkdir()
    people = (("Colin_Powell", 10), ("Donald_Rumsfeld", 10), ("Tony_Blair", 9))
    strangers = ("Aaron_Eckhart", "Abdullah_Gul", "Adam_Sandler")
    for name, count in (*people, *((s, 1) for s in strangers)):
        for path in sorted((lfw_dir / name).glob("*.jpg"))[:count]:
            shutil.copy(path, root / path.name)
    lib = library.open_library(root)
    model_versions.register_base(lib, real_weights)
    pipeline.scan(lib, root, pipeline.Analyzer.from_weights(real_weights, "cpu"))
    cluster.recluster(lib)

    def clusters() -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for f in lib.faces():
            if f.cluster_id:
                out.setdefault(f.cluster_id, set()).add(f.photo_path.rsplit("_", 1)[0])
        return out

    before = clusters()
    blair = next(c for c, names in before.items() if names == {"Tony_Blair"})
    blair_faces = set(album.group_faces(lib, "cluster", blair))
    assert len(blair_faces) >= 8
    for cid, names in before.items():
        if cid != blair:
            naming.name_cluster(lib, cid, names.pop(), leave_out=())
    summary = cluster.recluster(lib)  # what a rescan does in a small library
    assert summary.clusters == 1
    assert set(album.group_faces(lib, "cluster", blair)) == blair_faces
    lib.close()


def test_a_previous_cluster_left_wholly_as_noise_is_kept_by_the_cluster_rules() -> None:
    from faceapp.engine.cluster_steps import keep_previous_clusters

    rng = np.random.default_rng(0)
    centre = rng.normal(size=64)
    x = np.stack([centre + rng.normal(size=64) * 0.1 for _ in range(7)])
    x = np.vstack([x, rng.normal(size=(1, 64))])  # a stranger that was in the group
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.array([0, 0, 0, -1, -1, -1, -1, -1])  # 0-2: another person's cluster
    before = np.array([0, 0, 0, 3, 3, 3, 3, 3])
    before[:3] = 9
    photos = np.array([0, 1, 2, 3, 3, 5, 6, 7])  # 3 and 4: one photo
    kept = keep_previous_clusters(x, labels, before, photos, 0.75 * 1.1, 0.4 * 1.1, min_size=3)
    assert kept == 3 and labels[5] == labels[6] == 1
    assert sorted(labels[[3, 4]].tolist()) == [-1, 1]  # one face per photo
    assert labels[7] == -1  # the stranger is trimmed
    assert keep_previous_clusters(x, labels, np.zeros(8, np.int64), photos, 1, 1, 3) == 0


def test_a_previous_cluster_partly_in_a_new_one_does_not_split_its_person() -> None:
    """Some of an old cluster's faces in a new cluster, the rest noise: the rest stays
    Unknown instead of making a second group of the same person beside it."""
    from faceapp.engine.cluster_steps import keep_previous_clusters

    rng = np.random.default_rng(0)
    centre = rng.normal(size=64)
    x = np.stack([centre + rng.normal(size=64) * 0.1 for _ in range(7)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.array([-1, -1, -1, -1, -1, 0, 0])  # 5, 6: put in a cluster by the run
    before = np.full(7, 3)
    kept = keep_previous_clusters(x, labels, before, np.arange(7), 0.75 * 1.1, 0.4 * 1.1, 3)
    assert kept == 0 and labels.tolist() == [-1, -1, -1, -1, -1, 0, 0]
