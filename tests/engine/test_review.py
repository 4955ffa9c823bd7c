"""The review queue: suggestions up to the threshold, calibrated confidence, likely vs
unsure, accept-all-likely as one undo step, cluster suggestions."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_album import Album, unit

from faceapp.engine import oplog, people, review


@pytest.fixture
def album(tmp_path):
    a = Album(tmp_path / "lib.sqlite", identities=4, per_identity=8)
    yield a
    a.lib.close()


def test_fit_logistic_recovers_a_known_curve():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 2, 20000)
    p = 1 / (1 + np.exp((d - 0.8) / 0.1))
    mid, scale = review.fit_logistic(d, rng.random(len(d)) < p)
    assert mid == pytest.approx(0.8, abs=0.02) and scale == pytest.approx(0.1, abs=0.01)
    assert review.fit_logistic(d, np.ones(len(d), bool)) is None


def test_calibration_falls_back_to_lfw_then_uses_the_users_labels(album):
    lib = album.lib
    cal = review.calibrate(lib)
    assert cal.source == "lfw"
    assert cal.mid == pytest.approx(review.LFW_MID_RATIO * 1.1)
    assert float(cal.confidence(cal.mid)) == pytest.approx(0.5)
    for ident, name in enumerate("ABCD"):
        people.create_person(lib, name, album.faces_of(ident))
    # well-separated people give no examples near the threshold: LFW's curve stays
    assert review.calibrate(lib).source == "lfw"
    # look-alike people (same-person distances ~0.6, other people ~1.0): the user's own fit
    rng = np.random.default_rng(1)
    shared = unit(rng.normal(size=512))
    for k in range(6):
        centre = unit(0.8 * shared + 0.6 * unit(rng.normal(size=512)))
        faces = [
            album.photo([0], vectors=[unit(centre + 0.6 * unit(rng.normal(size=512)))])[0]
            for _ in range(12)
        ]
        people.create_person(lib, f"Twin {k}", faces)
    cal = review.calibrate(lib)
    assert cal.source == "library" and cal.examples >= 2 * review.MIN_EXAMPLES
    assert 0.6 < cal.mid < 1.0
    assert float(cal.confidence(0.4)) > 0.9 and float(cal.confidence(1.2)) < 0.1


def test_review_reaches_the_threshold_labels_and_orders_by_uncertainty(album):
    lib = album.lib
    pid = people.create_person(lib, "Anna", album.faces_of(0)[:4]).person_id
    centre = album.centres[0]
    # faces at growing distance from Anna: near, borderline, far (but under 1.1), beyond
    far_vec = []
    for target in (0.3, 0.75, 1.0, 1.4):
        other = unit(np.random.default_rng(int(target * 10)).normal(size=centre.shape))
        other = unit(other - (other @ centre) * centre)
        # a unit vector at squared distance `target` from the centre
        cos = 1 - target / 2
        far_vec.append(unit(cos * centre + np.sqrt(1 - cos**2) * other))
    ids = [album.photo([0], vectors=[v])[0] for v in far_vec]
    items = {s.face_id: s for s in review.review(lib)}
    assert ids[0] in items and ids[1] in items and ids[2] in items
    assert ids[3] not in items  # beyond the threshold: not proposed
    assert all(items[f].person_id == pid for f in ids[:3])
    assert items[ids[0]].label == "likely" and items[ids[2]].label == "unsure"
    assert items[ids[0]].confidence > items[ids[1]].confidence > items[ids[2]].confidence
    queue = review.review(lib)
    # most uncertain first: nearest the likely/unsure boundary, not 50%
    gaps = [abs(s.confidence - review.LIKELY) for s in queue]
    assert gaps == sorted(gaps)
    assert len(review.review(lib, limit=2)) == 2


def test_accept_likely_is_one_undo_step_and_keeps_one_face_per_photo(album):
    lib = album.lib
    pid = people.create_person(lib, "Anna", album.faces_of(0)[:3]).person_id
    for ident, name in ((1, "Bo"), (2, "Cy")):
        people.create_person(lib, name, album.faces_of(ident)[:3])
    twins = album.photo([0, 0])  # two faces near Anna in one photo: only one may be her
    likely = [s for s in review.review(lib) if s.label == "likely"]
    assert len(likely) >= 10
    before = lib.conn.execute("SELECT id, person_id, cluster_id FROM faces").fetchall()
    changes = review.accept_likely(lib)
    n = len(changes.faces)
    assert n == len(likely) - 1
    assert changes.description.startswith(f"Accepted {n} likely suggestions")
    assert sum(lib.face(f).person_id == pid for f in twins) == 1
    for s in likely:
        if s.face_id not in twins:
            assert lib.face(s.face_id).person_id == s.person_id
    assert oplog.undo(lib).description == changes.description
    assert lib.conn.execute("SELECT id, person_id, cluster_id FROM faces").fetchall() == before
    oplog.redo(lib)
    assert review.accept_likely(lib) is None  # the other twin is barred: her photo has her
    assert sum(lib.face(f).person_id == pid for f in twins) == 1


def test_cluster_review_text_and_rejections_respected(album):
    lib = album.lib
    pid = people.create_person(lib, "Anna", album.faces_of(0)[:2]).person_id
    lib.conn.execute("INSERT INTO clusters(id, created_at) VALUES (7, 0)")
    lib.conn.executemany(
        "UPDATE faces SET cluster_id = 7 WHERE id = ?", [(f,) for f in album.faces_of(0)[2:]]
    )
    (c,) = review.cluster_reviews(lib)
    assert (c.cluster_id, c.person_id, c.matching, c.count) == (7, pid, 6, 6)
    assert c.text == "6 faces of Cluster 7 look like Anna"
    assert 0 < c.confidence <= 1


def test_review_respects_rejections_and_answers(album):
    """Moved from the old suggestions: the rest of a half-confirmed person is proposed;
    "no" is remembered, "yes" confirms, and the cluster of the rest looks like them."""
    lib = album.lib
    faces = album.faces_of(1)
    pid = people.create_person(lib, "Anna", faces[:4]).person_id
    rest = set(faces[4:])
    items = review.review(lib)
    assert {s.face_id for s in items if s.person_id == pid} == rest
    assert all(s.person_name == "Anna" and 0 < s.confidence <= 1 for s in items)
    rejected, confirmed = sorted(rest)[:2]
    people.reject_suggestion(lib, rejected, pid)
    assert rejected not in {s.face_id for s in review.review(lib)}
    people.confirm_suggestion(lib, confirmed, pid)
    assert lib.face(confirmed).person_id == pid
    assert confirmed not in {s.face_id for s in review.review(lib)}
    lib.conn.execute("INSERT INTO clusters(id, created_at) VALUES (5, 0)")
    lib.conn.executemany(
        "UPDATE faces SET cluster_id = 5 WHERE id = ?", [(f,) for f in rest - {confirmed}]
    )
    (c,) = review.cluster_reviews(lib)
    # the rejected face still belongs to the cluster but never points at Anna
    assert (c.cluster_id, c.person_id, c.matching, c.count) == (5, pid, 2, 3)


def test_review_skips_a_person_already_in_the_photo(album):
    """Two look-alike faces of one photo: both proposed until one is confirmed; then the
    other is barred (a photo shows a person once)."""
    lib = album.lib
    pid = people.create_person(lib, "Anna", album.faces_of(0)[:3]).person_id
    f1, f2 = album.photo([0, 0])
    assert {f1, f2} <= {s.face_id for s in review.review(lib)}
    people.confirm_suggestion(lib, f1, pid)
    assert f2 not in {s.face_id for s in review.review(lib)}
    with pytest.raises(people.PeopleError, match="same photo"):
        people.confirm_suggestion(lib, f2, pid)
