"""How the review screen words a confidence."""

from __future__ import annotations

from faceapp.gui.views.review import percent


def test_a_confidence_never_reads_as_certain():
    assert percent(0.9991) == "over 99%"  # not "100%": a suggestion is never certain
    assert percent(0.004) == "under 1%"
    assert percent(0.75) == "75%" and percent(0.994) == "99%"
