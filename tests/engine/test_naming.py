"""Naming: new people from any selection, outliers left out when a cluster is named,
"not this cluster" remembered, and a rescan that never confirms a face by itself."""

from __future__ import annotations

import pytest
from synthetic_album import Album

from faceapp.engine import naming, oplog, people, review
from faceapp.engine.cluster import recluster
from faceapp.engine.people import PeopleError


@pytest.fixture
def album(tmp_path):
    a = Album(tmp_path / "lib.sqlite")
    yield a
    a.lib.close()


def state(lib):
    return lib.conn.execute("SELECT id, person_id, cluster_id FROM faces ORDER BY id").fetchall()


def test_move_to_a_new_name_creates_the_person_in_one_undo_step(album):
    lib = album.lib
    faces = album.faces_of(0)[:2]
    before = state(lib)
    with pytest.raises(PeopleError, match=r"no person named 'Anna'.*--create"):
        naming.move_to_name(lib, faces, "Anna")
    result = naming.move_to_name(lib, faces, "  Anna ", create=True)
    assert (result.name, result.created, result.moved) == ("Anna", True, 2)
    assert {lib.face(f).person_id for f in faces} == {result.person_id}
    again = naming.move_to_name(lib, album.faces_of(0)[2:3], "anna")  # existing, any case
    assert (again.person_id, again.created, again.moved) == (result.person_id, False, 1)
    oplog.undo(lib)
    oplog.undo(lib)
    assert state(lib) == before
    assert lib.conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 0


def test_move_to_person_counts_only_faces_that_changed(album):
    lib = album.lib
    pid = people.create_person(lib, "Bo", album.faces_of(1)[:1]).person_id
    result = naming.move_to_person(lib, album.faces_of(1)[:3], pid)
    assert (result.moved, result.created, result.name) == (2, False, "Bo")


def test_outlier_is_flagged_and_left_out_when_the_cluster_is_named(album):
    lib = album.lib
    recluster(lib)
    cid = lib.face(album.faces_of(0)[0]).cluster_id
    # a rescan brings a face of someone else into the unnamed cluster
    stranger = album.photo([3])[0]
    lib.conn.execute("UPDATE faces SET cluster_id = ? WHERE id = ?", (cid, stranger))
    assert naming.cluster_outliers(lib, cid) == [stranger]
    before = state(lib)
    result = naming.name_cluster(lib, cid, "Anna")
    assert result.created and result.to_review == (stranger,)
    assert result.moved == len(album.faces_of(0))
    assert lib.face(stranger).person_id is None and lib.face(stranger).cluster_id is None
    assert "1 face to review" in result.description
    oplog.undo(lib)
    assert state(lib) == before


def test_naming_a_cluster_with_an_existing_name_merges_into_that_person(album):
    lib = album.lib
    recluster(lib)
    first = album.faces_of(2)[:3]
    pid = people.create_person(lib, "Cy", first).person_id
    recluster(lib)
    cid = lib.face(album.faces_of(2)[-1]).cluster_id
    if cid is None:  # held back as suggestions: make the rest a cluster by hand
        rest = album.faces_of(2)[3:]
        lib.conn.execute(
            "INSERT INTO clusters(id, created_at) VALUES (99, 0)",
        )
        lib.conn.executemany("UPDATE faces SET cluster_id = 99 WHERE id = ?", [(f,) for f in rest])
        cid = 99
    result = naming.name_cluster(lib, cid, person_id=pid)
    assert not result.created and result.person_id == pid
    assert all(lib.face(f).person_id == pid for f in album.faces_of(2))


def test_reject_cluster_is_remembered_and_undoable(album):
    lib = album.lib
    recluster(lib)
    pid = people.create_person(lib, "Anna", album.faces_of(0)[:2]).person_id
    cid = 99
    lib.conn.execute("INSERT INTO clusters(id, created_at) VALUES (99, 0)")
    lib.conn.executemany(
        "UPDATE faces SET cluster_id = 99 WHERE id = ?", [(f,) for f in album.faces_of(0)[2:]]
    )
    assert [(c.cluster_id, c.person_id) for c in review.cluster_reviews(lib)] == [(cid, pid)]
    changes = naming.reject_cluster(lib, cid, pid)
    assert changes.description == "Cluster 99 is not Anna"
    assert changes.faces == frozenset(album.faces_of(0)[2:])
    assert review.cluster_reviews(lib) == []
    assert all(s.person_id != pid for s in review.review(lib))
    assert lib.face(album.faces_of(0)[3]).cluster_id == cid  # the faces stay in the cluster
    oplog.undo(lib)
    assert [c.cluster_id for c in review.cluster_reviews(lib)] == [cid]


def test_rescan_never_confirms_a_face_without_a_yes(album):
    lib = album.lib
    recluster(lib)
    for ident, name in ((0, "Anna"), (1, "Bo")):
        cid = lib.face(album.faces_of(ident)[0]).cluster_id
        naming.name_cluster(lib, cid, name)
    confirmed = {f for f, p, _ in state(lib) if p is not None}
    new = [album.photo([0])[0] for _ in range(6)] + [album.photo([1])[0] for _ in range(6)]
    recluster(lib)
    assert {f for f, p, _ in state(lib) if p is not None} == confirmed
    suggested = {s.face_id for s in review.review(lib)}
    assert set(new) <= suggested
