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
