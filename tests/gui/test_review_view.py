"""How the review screen words a confidence and fits a long question."""

from __future__ import annotations

from faceapp.gui.views.review import percent


def test_a_confidence_never_reads_as_certain():
    assert percent(0.9991) == "over 99%"  # not "100%": a suggestion is never certain
    assert percent(0.004) == "under 1%"
    assert percent(0.75) == "75%" and percent(0.994) == "99%"


def test_a_long_question_wraps_instead_of_widening_the_window(qtbot):
    """ "5 faces of Cluster 13 look like <a long name>: merge?" was cut off at the right
    edge and squeezed the sidebar: the question wraps, the screen keeps its width."""
    from faceapp.engine.review import ClusterReview
    from faceapp.gui.thumbnails import ThumbnailCache
    from faceapp.gui.views.review import ReviewView

    view = ReviewView(ThumbnailCache())
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    short = view.minimumSizeHint().width()
    long_name = "Maria Guadalupe Fernandez de la Torre y Montenegro"
    view.set_suggestions([ClusterReview(13, 1, long_name, 5, 8, 0.4)])
    assert view.question.text() == f"5 faces of Cluster 13 look like {long_name}: merge?"
    assert view.minimumSizeHint().width() <= short
    qtbot.waitUntil(lambda: view.question.height() > view.question.fontMetrics().height() * 1.5)
    assert view.question.geometry().right() <= view.width()
