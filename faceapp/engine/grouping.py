"""One setting a person can use: grouping from "looser" to "stricter".

Looser groups more faces together (fewer, bigger groups, more wrong faces in them);
stricter keeps groups pure (more faces left in Unknown, a person split in more
groups). Each step moves the clustering parameters that control exactly that trade
together; step 0 is :class:`ClusterParams`' defaults (chosen on LFW). The GUI shows
the steps as a slider and the parameters under "Advanced".
"""

from __future__ import annotations

import dataclasses
from typing import Any

from faceapp.engine.cluster import ClusterParams

LEVELS: dict[int, str] = {
    -2: "much looser",
    -1: "looser",
    0: "balanced",
    1: "stricter",
    2: "much stricter",
}
# per level: (min_cluster_size, trim_ratio, merge_ratio, cohesion_ratio, attach_ratio,
# pair_ratio)
_STEPS: dict[int, tuple[int, float, float, float, float, float]] = {
    -2: (3, 0.95, 0.6, 0.5, 0.5, 0.7),
    -1: (3, 0.85, 0.5, 0.45, 0.0, 0.65),
    0: (4, 0.75, 0.4, 0.4, 0.0, 0.6),
    1: (4, 0.65, 0.3, 0.35, 0.0, 0.5),
    2: (5, 0.55, 0.2, 0.3, 0.0, 0.0),
}
_FIELDS = (
    "min_cluster_size", "trim_ratio", "merge_ratio", "cohesion_ratio", "attach_ratio",
    "pair_ratio",
)  # fmt: skip


def grouping_params(level: int, base: ClusterParams | None = None) -> ClusterParams:
    """The clustering parameters for a grouping level (-2 much looser ... 2 much
    stricter); the other parameters are taken from ``base``."""
    if int(level) not in _STEPS:
        raise ValueError(f"grouping level must be one of {sorted(_STEPS)}")
    values: dict[str, Any] = dict(zip(_FIELDS, _STEPS[int(level)], strict=True))
    return dataclasses.replace(base or ClusterParams(), **values)


def grouping_level(params: ClusterParams) -> int | None:
    """The level whose parameters ``params`` has, or None for a custom setting."""
    current = tuple(getattr(params, f) for f in _FIELDS)
    for level, values in _STEPS.items():
        if current == values:
            return level
    return None
