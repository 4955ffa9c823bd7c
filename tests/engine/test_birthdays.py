"""Birth dates: faces from before a person was born are never suggested for, merged into
or held back for that person; ages on photos."""

from __future__ import annotations

import pytest
from synthetic_album import Album

from faceapp.engine import birthdays, naming, oplog, people, photos, review
from faceapp.engine.birthdays import BirthdayError
from faceapp.engine.cluster import recluster


@pytest.fixture
def album(tmp_path):
    a = Album(tmp_path / "lib.sqlite", identities=3, per_identity=6)  # years 2000-2005
    yield a
    a.lib.close()


def test_age_and_parsing():
    assert birthdays.age_at("2000-02-29", "2010-02-28T10:00:00") == 9
    assert birthdays.age_at("2000-02-29", "2010-03-01T00:00:00") == 10
    assert birthdays.age_at("2000-01-01", "1999-12-31T23:00:00") is None
    assert birthdays.age_at(None, "2010-01-01") is None
    assert birthdays.parse_date("2010-5-3") == "2010-05-03"
    with pytest.raises(BirthdayError, match="not a date"):
        birthdays.parse_date("2010-13-01")


def test_no_suggestion_or_merge_before_birth(album):
    lib = album.lib
    late = album.faces_of(0)[3:]  # photos of 2003-2005
    anna = people.create_person(lib, "Anna", late).person_id
    with pytest.raises(BirthdayError, match="taken before 2004-01-01"):
        birthdays.set_birth_date(lib, anna, "2004-01-01")
    changes = birthdays.set_birth_date(lib, anna, "2003-01-01")
    assert changes.description == "Anna: born 2003-01-01" and changes.people == {anna}
    early = album.faces_of(0)[:3]  # 2000-2002: before she was born
    assert not {s.face_id for s in review.review(lib)} & set(early)
    # a cluster of her early faces merged into her leaves them out
    lib.conn.execute("INSERT INTO clusters(id, created_at) VALUES (40, 0)")
    lib.conn.executemany("UPDATE faces SET cluster_id = 40 WHERE id = ?", [(f,) for f in early])
    result = naming.name_cluster(lib, 40, person_id=anna, leave_out=())
    assert result.moved == 0 and all(lib.face(f).person_id is None for f in early)
    lib.conn.execute("INSERT INTO clusters(id, created_at) VALUES (41, 0)")
    lib.conn.executemany("UPDATE faces SET cluster_id = 41 WHERE id = ?", [(f,) for f in early])
    bo = people.create_person(lib, "Bo", [early[0]]).person_id
    text = people.merge(lib, ("person", bo), ("person", anna)).description
    assert "left in Unknown" in text and lib.face(early[0]).person_id is None
    # re-clustering does not hold them back as hers either: they form their own group
    recluster(lib)
    assert not {s.face_id for s in review.review(lib)} & set(early)
    birthdays.set_birth_date(lib, anna, None)
    assert set(early) <= {s.face_id for s in review.review(lib)}
    assert oplog.undo(lib).description == "Anna: birth date cleared"  # one undo step
    assert birthdays.birth_date(lib, anna) == "2003-01-01"
    assert not {s.face_id for s in review.review(lib)} & set(early)


def test_undoing_a_deletion_brings_the_birth_date_and_cover_back(album):
    lib = album.lib
    anna = people.create_person(lib, "Anna", album.faces_of(0)).person_id
    birthdays.set_birth_date(lib, anna, "1990-01-01")
    photos.set_cover(lib, anna, album.faces_of(0)[1])
    people.delete_person(lib, anna)
    oplog.undo(lib)
    assert birthdays.birth_date(lib, anna) == "1990-01-01"
    assert photos.cover_face(lib, anna) == album.faces_of(0)[1]
