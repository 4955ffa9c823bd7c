"""People with 2-3 faces get a group of their own without splitting people with many
(real FaceNet embeddings of LFW)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from faceapp.engine import pipeline
from faceapp.engine.clustering import ClusterParams, cluster_vectors

MANY = (("Colin_Powell", 20), ("Donald_Rumsfeld", 12), ("Tony_Blair", 12))
FEW = "Al_Pacino"  # 3 photos in LFW
STRANGERS = (
    "Aaron_Eckhart", "Adam_Sandler", "Alan_Greenspan", "Amelie_Mauresmo", "Andre_Agassi",
    "Angelina_Jolie", "Ann_Veneman", "Ari_Fleischer",
)  # fmt: skip


@pytest.fixture(scope="module")
def embedded(lfw_dir: Path, real_weights) -> tuple[np.ndarray, np.ndarray, float]:
    """The face nearest each image's centre, embedded by the app; who it is; the
    model's verification threshold."""
    analyzer = pipeline.Analyzer.from_weights(real_weights, "cpu")
    vectors, who = [], []
    for name, count in (*MANY, (FEW, 3), *((s, 1) for s in STRANGERS)):
        for path in sorted((lfw_dir / name).glob("*.jpg"))[:count]:
            _, faces = analyzer.analyze_path(path)
            centre = min(faces, key=lambda a: abs((a.face.box[0] + a.face.box[2]) / 2 - 125))
            vectors.append(centre.embedding)
            who.append(name)
    return np.stack(vectors).astype(np.float32), np.array(who), analyzer.threshold


def _groups_of(labels: np.ndarray, who: np.ndarray, name: str) -> set[int]:
    return set(labels[who == name].tolist())


@pytest.mark.slow
def test_a_person_with_three_photos_is_one_group_and_no_one_is_split(embedded) -> None:
    x, who, threshold = embedded
    labels = cluster_vectors(x, params=ClusterParams(), threshold=threshold).labels
    few = _groups_of(labels, who, FEW)
    assert len(few) == 1 and few.pop() >= 0  # one group of its own...
    assert set(who[labels == labels[who == FEW][0]]) == {FEW}  # ...with nobody else in it
    for name, _ in MANY:  # the people with many photos: one group each, no one else in it
        groups = _groups_of(labels, who, name) - {-1}
        assert len(groups) == 1, name
        assert set(who[labels == groups.pop()]) == {name}
    for name in STRANGERS:  # seen once: stay in Unknown
        assert _groups_of(labels, who, name) == {-1}
    # without the pairing step, HDBSCAN's minimum of 4 leaves the 3 photos in Unknown
    off = dataclasses.replace(ClusterParams(), pair_ratio=0.0)
    assert _groups_of(cluster_vectors(x, params=off, threshold=threshold).labels, who, FEW) == {-1}


def _near(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float) -> np.ndarray:
    x = centre + rng.normal(size=(n, len(centre))) * spread
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_pairing_leaves_clusters_alone_and_keeps_one_face_per_photo() -> None:
    from faceapp.engine.cluster_steps import pair_noise

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 64))
    x = np.vstack(
        [
            _near(rng, centres[0], 5, 0.02),  # 0-4: a cluster
            _near(rng, centres[0], 1, 0.02),  # 5: noise beside the cluster
            _near(rng, centres[1], 3, 0.02),  # 6-8: a person with 3 faces
            _near(rng, centres[2], 2, 0.02),  # 9-10: two faces of one photo
            _near(rng, centres[3], 1, 0.02),  # 11: a stranger
        ]
    )
    labels = np.array([0] * 5 + [-1] * 7)
    photos = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 11])
    assert pair_noise(x, labels, photos, 0.6 * 1.1, 1.1) == 3
    assert labels[:5].tolist() == [0] * 5  # the cluster is untouched
    assert labels[5] == -1  # its nearest faces are clustered: left alone
    assert labels[6] == labels[7] == labels[8] == 1
    assert labels[9:].tolist() == [-1, -1, -1]  # one photo's faces, and the stranger
