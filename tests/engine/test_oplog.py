"""The op log: every operation's exact change set, undo/redo shared by every process."""

from __future__ import annotations

import pytest
from test_people import build_library, clusters_of

from faceapp.engine import album, naming, oplog, people
from faceapp.engine.cluster import recluster
from faceapp.engine.library import Library


@pytest.fixture
def lib(tmp_path):
    library, _truth = build_library(tmp_path / "lib.sqlite")
    recluster(library)
    yield library
    library.close()


def test_operations_return_their_exact_change_set(lib):
    c1, c2 = clusters_of(lib)[:2]
    faces1 = set(album.group_faces(lib, "cluster", c1.id))
    named = naming.name_cluster(lib, c1.id, "Anna").changes
    assert (
        named.kind == "name"
        and named.action == "do"
        and named.description.startswith(f"Named cluster {c1.id} as Anna")
    )
    assert named.person_id is not None and named.people == {named.person_id}
    assert named.faces == faces1 and named.clusters == {c1.id} and not named.unknown
    assert named.touches("person", named.person_id) and named.touches("cluster", c1.id)
    assert not named.touches("cluster", c2.id) and not named.touches("unknown")
    renamed = people.rename_person(lib, named.person_id, "Anne")
    assert renamed.description == "Renamed Anna to Anne"
    assert renamed.people == {named.person_id} and not renamed.faces and not renamed.clusters
    face = sorted(faces1)[0]
    rejected = people.reject_faces(lib, [face], named.person_id)
    assert rejected.faces == {face} and rejected.unknown and rejected.people == {named.person_id}
    # undo returns the same change set, marked as an undo
    undone = oplog.undo(lib)
    assert undone.action == "undo" and undone.status_text == f"Undid: {rejected.description}"
    assert undone.faces == rejected.faces and undone.step == rejected.step


def test_undo_names_what_it_undid_when_another_connection_undid_first(lib, tmp_path):
    c1, c2 = clusters_of(lib)[:2]
    anna = naming.name_cluster(lib, c1.id, "Anna").person_id
    ben = naming.name_cluster(lib, c2.id, "Ben").person_id
    people.rename_person(lib, anna, "Anne")
    people.rename_person(lib, ben, "Benny")
    assert oplog.undo_status(lib).undo == "Renamed Ben to Benny"
    other = Library(lib.path)  # another process's connection to the same file
    assert oplog.undo(other).description == "Renamed Ben to Benny"
    other.close()
    status = oplog.undo_status(lib)
    assert (status.undo, status.redo) == ("Renamed Anna to Anne", "Renamed Ben to Benny")
    assert oplog.undo(lib).status_text == "Undid: Renamed Anna to Anne"
    names = {g.id: g.name for g in album.groups(lib) if g.kind == "person"}
    assert names == {anna: "Anna", ben: "Ben"}
    assert oplog.redo(lib).status_text == "Redid: Renamed Anna to Anne"


def test_a_new_operation_elsewhere_gets_undo_from_commit(lib):
    """Operations in other modules build a Changes and call commit: undo comes free."""
    face = album.group_faces(lib, "cluster", clusters_of(lib)[0].id)[0]
    row = lib.face(face)
    with lib.transaction() as c:
        ch = oplog.Changes()
        ch.face(face, (row.person_id, row.cluster_id), (None, None))
        done = oplog.commit(c, "custom", "Sent face to Unknown", ch)
    assert done.unknown and done.faces == {face} and lib.face(face).cluster_id is None
    before = oplog.undo_status(lib).last_step
    assert oplog.undo(lib).description == "Sent face to Unknown"
    assert lib.face(face).cluster_id == row.cluster_id
    assert oplog.undo_status(lib).last_step != before
