import numpy as np
import pytest

from faceapp.engine import metrics


def test_read_pairs_parses_same_and_different_lines(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_text("2\t1\nAnna\t1\t4\nAnna\t2\tBob\t12\n")
    pairs = metrics.read_pairs(f)
    assert pairs == [
        metrics.Pair("Anna/Anna_0001.jpg", "Anna/Anna_0004.jpg", True),
        metrics.Pair("Anna/Anna_0002.jpg", "Bob/Bob_0012.jpg", False),
    ]


def test_best_threshold_separates_perfectly_separable_data():
    d = np.array([0.1, 0.2, 0.3, 1.5, 1.6, 1.7])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    t = metrics.best_threshold(d, same)
    assert 0.3 < t < 1.5
    assert metrics.accuracy_at(d, same, t) == 1.0


def test_threshold_for_far_never_exceeds_target():
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.6, 0.2, 3000), rng.normal(1.6, 0.2, 3000)])
    same = np.r_[np.ones(3000, bool), np.zeros(3000, bool)]
    t = metrics.threshold_for_far(d, same, 1e-3)
    val, far = metrics.val_far_at(d, same, t)
    assert far <= 1e-3
    assert val > 0.9


def test_roc_auc_matches_pair_counting():
    d = np.array([0.1, 0.5, 0.4, 0.9, 0.5])
    same = np.array([1, 1, 0, 0, 0], bool)
    # P(d_same < d_diff), ties count half: 0.1 beats all 3; 0.5 beats 0.9, ties 0.5
    assert metrics.roc_auc(d, same) == pytest.approx(4.5 / 6)


def test_evaluate_ten_folds_reports_all_fields():
    rng = np.random.default_rng(1)
    n = 600
    same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    d = np.where(same, rng.normal(0.7, 0.15, n), rng.normal(1.5, 0.15, n))
    report = metrics.evaluate(d, same)
    assert report.pairs == n
    assert 0.95 < report.accuracy <= 1.0
    assert 0.7 < report.threshold < 1.5
    assert report.auc > 0.99
    assert set(report.as_dict()) >= {"accuracy", "accuracy_std", "val_at_far_1e-3", "far", "auc"}
