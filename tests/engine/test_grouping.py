"""The one grouping setting: level 0 is the tuned defaults, the levels are ordered."""

from __future__ import annotations

import itertools

import pytest

from faceapp.engine.cluster import ClusterParams
from faceapp.engine.grouping import LEVELS, grouping_level, grouping_params


def test_levels_map_onto_the_parameters():
    assert grouping_params(0) == ClusterParams()
    assert grouping_level(ClusterParams()) == 0
    steps = [grouping_params(level) for level in sorted(LEVELS)]
    for looser, stricter in itertools.pairwise(steps):
        assert looser.trim_ratio > stricter.trim_ratio
        assert looser.merge_ratio > stricter.merge_ratio
        assert looser.cohesion_ratio > stricter.cohesion_ratio
        assert looser.min_cluster_size <= stricter.min_cluster_size
        assert looser.pair_ratio > stricter.pair_ratio
    assert [grouping_level(p) for p in steps] == sorted(LEVELS)
    custom = grouping_params(1, ClusterParams(nprobe=8))
    assert custom.nprobe == 8 and grouping_level(custom) == 1
    assert grouping_level(ClusterParams(trim_ratio=0.7)) is None
    with pytest.raises(ValueError, match="grouping level"):
        grouping_params(3)
