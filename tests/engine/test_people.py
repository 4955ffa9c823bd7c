"""Identity operations: names, merges, moves, rejections, answers to suggestions, undo/redo."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from faceapp.engine import album, naming, oplog, people
from faceapp.engine.cluster import recluster
from faceapp.engine.library import Library
from faceapp.engine.library_photos import NewFace
from faceapp.engine.people import PeopleError

DIM = 512


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def build_library(
    path,
    *,
    identities: int = 5,
    per_identity: int = 10,
    pair_photos: int = 6,
    seed: int = 0,
    threshold: float = 1.1,
) -> tuple[Library, dict[int, int]]:
    """A library of synthetic faces: tight identities far apart (squared L2 within
    ~0.4, between ~1.8), one face per photo plus ``pair_photos`` photos with two
    people. Returns the library and face id -> true identity."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(identities, DIM)))
    lib = Library(path)
    model = lib.add_model(
        name="test",
        source="test",
        origin="synthetic",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=threshold,
        threshold_source="test",
    )

    def face(identity: int, x: float = 10.0) -> NewFace:
        vec = _unit(centres[identity] + rng.normal(size=DIM) * 0.45 / np.sqrt(DIM))
        return NewFace((x, 10.0, x + 50, 60.0), [[0.0, 0.0]] * 5, 0.99, b"jpeg", vec)

    truth: dict[int, int] = {}
    photo_faces: list[tuple[str, list[tuple[int, NewFace]]]] = []
    for ident in range(identities):
        for k in range(per_identity):
            photo_faces.append((f"p{ident}/{k:03d}.jpg", [(ident, face(ident))]))
    for k in range(pair_photos):
        a, b = rng.choice(identities, 2, replace=False)
        photo_faces.append(
            (f"pairs/{k:03d}.jpg", [(int(a), face(int(a), 10)), (int(b), face(int(b), 200))])
        )
    for path_, faces in photo_faces:
        lib.store_photo(
            path_,
            size=1,
            mtime_ns=1,
            width=400,
            height=300,
            content_hash=path_,
            faces=[f for _, f in faces],
            model_id=model,
        )
        pid = lib.conn.execute("SELECT id FROM photos WHERE path = ?", (path_,)).fetchone()[0]
        for (ident, _), row in zip(faces, lib.faces_of_photo(pid), strict=True):
            truth[row.id] = ident
    lib.set_active_model(model)
    return lib, truth


def snapshot(lib: Library) -> tuple:
    q = lib.conn.execute
    return (
        q("SELECT id, person_id, cluster_id FROM faces ORDER BY id").fetchall(),
        q("SELECT id, name, hidden FROM people ORDER BY id").fetchall(),
        q("SELECT id FROM clusters ORDER BY id").fetchall(),
        q("SELECT face_id, person_id FROM rejections ORDER BY 1, 2").fetchall(),
        q("SELECT face_id, cluster_id FROM cluster_rejections ORDER BY 1, 2").fetchall(),
    )


@pytest.fixture
def lib(tmp_path):
    library, truth = build_library(tmp_path / "lib.sqlite")
    recluster(library)
    library.truth = truth
    yield library
    library.close()


def shared_photos(lib: Library, faces_a: list[int], faces_b: list[int]) -> int:
    photos = {lib.face(f).photo_id for f in faces_a}
    return sum(lib.face(f).photo_id in photos for f in faces_b)


def clusters_of(lib: Library) -> list[album.Group]:
    return [g for g in album.groups(lib) if g.kind == "cluster"]


def test_recluster_finds_the_identities(lib):
    groups = clusters_of(lib)
    assert len(groups) == 5
    for g in groups:
        truths = {lib.truth[f] for f in album.group_faces(lib, "cluster", g.id)}
        assert len(truths) == 1


def test_groups_order_and_counts(lib):
    c1, c2 = clusters_of(lib)[:2]
    naming.name_cluster(lib, c2.id, "Zoe")
    naming.name_cluster(lib, c1.id, "anna")
    gs = album.groups(lib)
    assert [g.kind for g in gs[:2]] == ["person", "person"]
    assert [g.name for g in gs[:2]] == ["anna", "Zoe"]
    assert gs[-1].kind == "unknown" and gs[-1].label == "Unknown faces"
    counts = [g.count for g in gs if g.kind == "cluster"]
    assert counts == sorted(counts, reverse=True)
    assert sum(g.count for g in gs) == lib.counts()["faces"]
    for g in gs:
        assert len(album.group_faces(lib, g.kind, g.id)) == g.count
        if g.count:
            assert g.avatar_face_id in album.group_faces(lib, g.kind, g.id)


def test_name_cluster_confirms_and_same_name_merges(lib):
    c1, c2 = clusters_of(lib)[:2]
    faces1 = album.group_faces(lib, "cluster", c1.id)
    photos1 = {lib.face(f).photo_id for f in faces1}
    shared = sum(lib.face(f).photo_id in photos1 for f in album.group_faces(lib, "cluster", c2.id))
    pid = naming.name_cluster(lib, c1.id, "  Anna   Smith ").person_id
    assert album.group_faces(lib, "person", pid) == faces1
    assert lib.conn.execute("SELECT name FROM people").fetchall() == [("Anna Smith",)]
    assert all(lib.face(f).cluster_id is None for f in faces1)
    # naming another cluster with the same name (any case) merges into the person
    assert naming.name_cluster(lib, c2.id, "anna smith").person_id == pid
    # faces sharing a photo with one of Anna's stay out (two faces of one photo)
    assert len(album.group_faces(lib, "person", pid)) == c1.count + c2.count - shared
    with pytest.raises(PeopleError):
        naming.name_cluster(lib, c1.id, "again")  # the cluster is gone
    with pytest.raises(PeopleError):
        naming.name_cluster(lib, clusters_of(lib)[0].id, "   ")


def test_rename_and_hide(lib):
    c1, c2 = clusters_of(lib)[:2]
    a = naming.name_cluster(lib, c1.id, "Anna").person_id
    b = naming.name_cluster(lib, c2.id, "Bob").person_id
    people.rename_person(lib, a, "Annie")
    with pytest.raises(PeopleError, match="already"):
        people.rename_person(lib, b, "annie")
    people.set_hidden(lib, b, True)
    hidden = {g.name: g.hidden for g in album.groups(lib) if g.kind == "person"}
    assert hidden == {"Annie": False, "Bob": True}


def test_merge_people_moves_faces_and_rejections(lib):
    c1, c2, c3 = clusters_of(lib)[:3]
    a = naming.name_cluster(lib, c1.id, "Anna").person_id
    b = naming.name_cluster(lib, c2.id, "Anna 2").person_id
    stray = album.group_faces(lib, "cluster", c3.id)[0]
    people.reject_faces(lib, [stray], b)
    fa, fb = album.group_faces(lib, "person", a), album.group_faces(lib, "person", b)
    text = people.merge(lib, ("person", b), ("person", a)).description
    assert "Anna 2" in text and "Anna" in text
    assert len(album.group_faces(lib, "person", a)) == len(fa) + len(fb) - shared_photos(
        lib, fa, fb
    )
    assert lib.conn.execute("SELECT COUNT(*) FROM people WHERE id = ?", (b,)).fetchone()[0] == 0
    assert lib.conn.execute(
        "SELECT person_id FROM rejections WHERE face_id = ?", (stray,)
    ).fetchall() == [(a,)]


def test_merge_leaves_same_photo_faces_out(tmp_path):
    lib, _ = build_library(tmp_path / "l.sqlite", identities=2, per_identity=8, pair_photos=0)
    recluster(lib)
    c1, c2 = clusters_of(lib)
    a = naming.name_cluster(lib, c1.id, "A").person_id
    # a photo with one face of each identity, both clustered... put them in two people
    pid_photo = lib.store_photo(
        "both.jpg",
        size=1,
        mtime_ns=1,
        width=9,
        height=9,
        content_hash="b",
        faces=[
            NewFace((0, 0, 5, 5), [[0, 0]] * 5, 0.9, b"j", lib.embeddings()[1][0]),
            NewFace((5, 0, 9, 5), [[0, 0]] * 5, 0.9, b"j", lib.embeddings()[1][-1]),
        ],
        model_id=lib.active_model().id,
    )
    f1, f2 = (f.id for f in lib.faces_of_photo(pid_photo))
    people.move_faces(lib, [f1], a)
    b = naming.name_cluster(lib, c2.id, "B").person_id
    people.move_faces(lib, [f2], b)
    with pytest.raises(PeopleError, match="same photo"):
        people.move_faces(lib, [f1], b)
    text = people.merge(lib, ("person", a), ("person", b)).description
    assert "left in Unknown" in text
    assert lib.face(f1).person_id is None and lib.face(f2).person_id == b
    lib.close()


def test_merge_cluster_into_cluster_and_person_into_cluster(lib):
    c1, c2, c3 = clusters_of(lib)[:3]
    f1, f2, f3 = (album.group_faces(lib, "cluster", c.id) for c in (c1, c2, c3))
    people.merge(lib, ("cluster", c2.id), ("cluster", c1.id))
    f12 = album.group_faces(lib, "cluster", c1.id)
    assert len(f12) == len(f1) + len(f2) - shared_photos(lib, f1, f2)
    a = naming.name_cluster(lib, c3.id, "Carl").person_id
    # dropping a person on a cluster: the cluster joins the person
    people.merge(lib, ("person", a), ("cluster", c1.id))
    assert len(album.group_faces(lib, "person", a)) == len(f3) + len(f12) - shared_photos(
        lib, f3, f12
    )
    assert not _cluster_ids(lib) & {c1.id, c2.id, c3.id}
    with pytest.raises(PeopleError):
        people.merge(lib, ("person", a), ("person", a))


def _cluster_ids(lib: Library) -> set[int]:
    return {r[0] for r in lib.conn.execute("SELECT id FROM clusters")}


def test_move_lifts_rejection_and_reject_remembers(lib):
    c1, c2 = clusters_of(lib)[:2]
    a = naming.name_cluster(lib, c1.id, "Anna").person_id
    face = album.group_faces(lib, "person", a)[0]
    people.reject_faces(lib, [face], a)
    assert lib.face(face).person_id is None and lib.face(face).cluster_id is None
    assert face in album.group_faces(lib, "unknown")
    # merging the cluster of a rejected face into the person leaves it out
    other = album.group_faces(lib, "cluster", c2.id)[0]
    people.reject_faces(lib, [other], a)
    text = people.merge(lib, ("cluster", c2.id), ("person", a)).description
    assert "rejected" in text
    assert lib.face(other).person_id is None
    # an explicit move is the user's word: it wins and lifts the rejection
    people.move_faces(lib, [face], a)
    assert lib.face(face).person_id == a
    assert not lib.conn.execute("SELECT 1 FROM rejections WHERE face_id = ?", (face,)).fetchall()


def test_remove_from_cluster_survives_recluster_and_becomes_rejection(lib):
    c1 = clusters_of(lib)[0]
    face = album.group_faces(lib, "cluster", c1.id)[0]
    people.remove_from_cluster(lib, [face], c1.id)
    recluster(lib)
    assert lib.face(face).cluster_id != c1.id
    assert c1.id in [g.id for g in clusters_of(lib)]  # the id is stable
    pid = naming.name_cluster(lib, c1.id, "Dora").person_id
    assert lib.conn.execute(
        "SELECT person_id FROM rejections WHERE face_id = ?", (face,)
    ).fetchall() == [(pid,)]


def test_undo_redo_every_operation_and_after_reopen(tmp_path):
    lib, _ = build_library(tmp_path / "lib.sqlite")
    recluster(lib)
    cl = [g.id for g in clusters_of(lib)]
    faces0 = album.group_faces(lib, "cluster", cl[4])
    a = {}

    def op_create():
        a["new"] = people.create_person(lib, "Eve", faces0[:2]).person_id

    ops = [
        lambda: a.setdefault("anna", naming.name_cluster(lib, cl[0], "Anna").person_id),
        lambda: a.setdefault("bob", naming.name_cluster(lib, cl[1], "Bob").person_id),
        lambda: naming.name_cluster(lib, cl[2], "anna").person_id,  # merge by name
        lambda: people.rename_person(lib, a["bob"], "Robert"),
        lambda: people.set_hidden(lib, a["bob"], True),
        lambda: people.reject_faces(
            lib, album.group_faces(lib, "person", a["anna"])[:2], a["anna"]
        ),
        lambda: people.move_faces(lib, album.group_faces(lib, "unknown")[:1], a["bob"]),
        lambda: people.remove_from_cluster(lib, faces0[-1:], cl[4]),
        op_create,
        lambda: people.merge(lib, ("cluster", cl[3]), ("cluster", cl[4])),
        lambda: people.merge(lib, ("person", a["bob"]), ("person", a["anna"])),
        lambda: people.merge(lib, ("cluster", cl[4]), ("person", a["new"])),
        lambda: people.confirm_suggestion(lib, album.group_faces(lib, "unknown")[0], a["anna"]),
        lambda: people.reject_suggestion(lib, album.group_faces(lib, "unknown")[0], a["new"]),
        lambda: people.delete_person(lib, a["new"]),
    ]
    states = [snapshot(lib)]
    for op in ops:
        n_log = len(oplog.history(lib))
        op()
        assert len(oplog.history(lib)) == n_log + 1  # exactly one log row per operation
        states.append(snapshot(lib))
    # undo everything, checking each intermediate state; half way, reopen the library
    for i in range(len(ops), 0, -1):
        assert oplog.undo(lib) is not None
        assert snapshot(lib) == states[i - 1], f"undo of operation {i}"
        if i == len(ops) // 2:
            lib.close()
            lib = Library(tmp_path / "lib.sqlite")
    assert oplog.undo(lib) is None
    for i in range(1, len(ops) + 1):
        assert oplog.redo(lib) is not None
        assert snapshot(lib) == states[i], f"redo of operation {i}"
    assert oplog.redo(lib) is None
    # a new operation after an undo drops the redo side
    oplog.undo(lib)
    people.rename_person(lib, a["anna"], "Anne")
    assert oplog.redo(lib) is None
    status = oplog.undo_status(lib)
    assert (status.undo, status.redo) == ("Renamed Anna to Anne", None)
    lib.close()


def test_undo_after_recluster_restores_labels(lib):
    c1 = clusters_of(lib)[0]
    faces = album.group_faces(lib, "cluster", c1.id)
    naming.name_cluster(lib, c1.id, "Anna")
    recluster(lib)
    oplog.undo(lib)
    assert album.group_faces(lib, "cluster", c1.id) == faces
    assert not lib.conn.execute("SELECT * FROM people").fetchall()


def test_parse_group_ref(lib):
    c1 = clusters_of(lib)[0]
    assert album.parse_group_ref(lib, f"c{c1.id}") == ("cluster", c1.id)
    assert album.parse_group_ref(lib, f"cluster:{c1.id}") == ("cluster", c1.id)
    pid = naming.name_cluster(lib, c1.id, "Anna Smith").person_id
    assert album.parse_group_ref(lib, f"p{pid}") == ("person", pid)
    assert album.parse_group_ref(lib, f"person:{pid}") == ("person", pid)
    assert album.parse_group_ref(lib, "Anna Smith") == ("person", pid)
    for bad in ("c99999", "p12345", "Nobody"):
        with pytest.raises(PeopleError):
            album.parse_group_ref(lib, bad)


def test_operations_from_threads(lib):
    """Worker threads each use their own connection; writes serialise."""
    groups = clusters_of(lib)
    errors: list[BaseException] = []

    def work(g):
        try:
            naming.name_cluster(lib, g.id, f"Person {g.id}")
            album.groups(lib)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len([g for g in album.groups(lib) if g.kind == "person"]) == len(groups)
    assert len(oplog.history(lib)) == len(groups)


def _big_library(path, n_faces: int, group: int) -> Library:
    """Many faces inserted directly (no embeddings: grouping and merging never read them)."""
    lib = Library(path)
    now = time.time()
    with lib.transaction() as c:
        c.executemany(
            "INSERT INTO photos(id, path, size, mtime_ns, status, scanned_at)"
            " VALUES (?, ?, 1, 1, 'ok', ?)",
            [(i + 1, f"{i:06d}.jpg", now) for i in range(n_faces)],
        )
        c.executemany(
            "INSERT INTO faces(id, photo_id, x1, y1, x2, y2, landmarks, prob, created_at)"
            " VALUES (?, ?, 0, 0, 10, 10, '[]', 0.9, ?)",
            [(i + 1, i + 1, now) for i in range(n_faces)],
        )
        c.executemany("INSERT INTO clusters(id, created_at) VALUES (?, ?)", [(1, now), (2, now)])
        c.execute("UPDATE faces SET cluster_id = 1 WHERE id <= ?", (group,))
        c.execute("UPDATE faces SET cluster_id = 2 WHERE id > ? AND id <= ?", (group, 2 * group))
    return lib


def test_merge_and_undo_of_large_groups(tmp_path):
    """Two 1,000-face people in a 50,000-face library (timed in bench/gui_responsiveness.py)."""
    lib = _big_library(tmp_path / "big.sqlite", 50_000, 1000)
    a = naming.name_cluster(lib, 1, "A").person_id
    b = naming.name_cluster(lib, 2, "B").person_id
    people.merge(lib, ("person", b), ("person", a))
    assert album.groups(lib)[0].count == 2000
    oplog.undo(lib)
    counts = {g.name: g.count for g in album.groups(lib) if g.kind == "person"}
    assert counts == {"A": 1000, "B": 1000}
    lib.close()


@pytest.fixture
def cli(monkeypatch, capsys):
    """``faceapp.cli.main`` with the people commands (registered by the main parser)."""
    import argparse
    import json

    import faceapp.cli as cli_mod
    from faceapp.cli import people as people_cli

    real = cli_mod.build_parser

    def build() -> argparse.ArgumentParser:
        parser = real()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "cluster" not in sub.choices:
            people_cli.register(sub)
        return parser

    monkeypatch.setattr(cli_mod, "build_parser", build)

    def run(*argv: object) -> tuple[int, object, str]:
        code = cli_mod.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        try:
            data = json.loads(out)
        except ValueError:
            data = out
        return code, data, err

    return run


def test_cli_commands(tmp_path, cli):
    lib, _ = build_library(tmp_path / "lib.sqlite")
    path = tmp_path / "lib.sqlite"
    lp = ["--library", path]
    code, data, _ = cli("cluster", *lp, "--json")
    assert code == 0 and set(data) == {"clusters", "unknown", "people", "seconds"}
    assert data["clusters"] == 5 and data["people"] == 0
    code, data, _ = cli("people", *lp, "--json")
    c1, c2, c3 = (c["id"] for c in data["clusters"][:3])
    assert cli("name", f"c{c1}", "Anna", *lp)[0] == 0
    assert cli("name", f"cluster:{c2}", "Bob", *lp)[0] == 0
    code, data, _ = cli("people", *lp, "--json")
    ids = {p["name"]: p["id"] for p in data["people"]}
    assert set(ids) == {"Anna", "Bob"}
    code, out, _ = cli("people", *lp)
    assert "Anna" in out and f"c{c3}" in out
    assert cli("name", "Bob", "Robert", *lp)[0] == 0
    code, data, _ = cli("merge", "Robert", f"p{ids['Anna']}", *lp, "--json")
    assert code == 0 and "Merged Robert into Anna" in data["done"]
    face = album.group_faces(lib, "person", ids["Anna"])[0]
    assert cli("reject", face, "--from", "Anna", *lp)[0] == 0
    assert lib.face(face).person_id is None
    assert cli("move", face, "--to", f"person:{ids['Anna']}", *lp)[0] == 0
    assert lib.face(face).person_id == ids["Anna"]
    code, out, _ = cli("undo", *lp)
    assert code == 0 and out.startswith("Undid: Moved 1 face to Anna")
    assert cli("redo", *lp)[0] == 0
    code, data, _ = cli("suggestions", *lp, "--json")
    assert code == 0 and set(data) == {"suggestions", "clusters", "calibration"}
    # expected failures: a message on stderr, a non-zero status, no traceback
    for argv in (
        ("name", "c99999", "X"),
        ("merge", "Anna", "Anna"),
        ("move", 999999, "--to", "Anna"),
        ("move", face, "--to", f"c{c3}"),
        ("reject", face, "--from", "Nobody"),
        ("name", f"c{c3}", "   "),
    ):
        code, _, err = cli(*argv, *lp)
        assert code != 0 and err.startswith("faceapp: ") and "Traceback" not in err, argv
    while cli("undo", *lp)[0] == 0:
        pass
    code, _, err = cli("undo", *lp)
    assert code == 1 and "nothing to undo" in err
    lib.close()
