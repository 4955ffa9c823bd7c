"""The naming commands as a user types them: move --create, review, accept-likely,
reject-cluster, outliers, photos, problems, birthday, cover, cluster --grouping."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from synthetic_album import Album

from faceapp.cli import main
from faceapp.engine import album as album_mod
from faceapp.engine import people


@pytest.fixture
def album(tmp_path):
    a = Album(tmp_path / "lib.sqlite")
    yield a
    a.lib.close()


@pytest.fixture
def cli(album, capsys):
    def run(*argv: object, as_json: bool = True) -> tuple[int, object, str]:
        args = [str(a) for a in argv] + ["--library", str(album.lib.path)]
        code = main(args + (["--json"] if as_json else []))
        out, err = capsys.readouterr()
        return code, (json.loads(out) if as_json and code == 0 else out), err

    return run


def test_move_create(album, cli):
    faces = album.faces_of(0)[:2]
    code, _, err = cli("move", *faces, "--to", "Anna")
    assert code == 1 and "no person 'Anna'" in err and "--create" in err
    code, data, _ = cli("move", *faces, "--to", "Anna", "--create")
    assert code == 0 and {"done", "person", "name", "created", "moved"} <= set(data)
    assert (data["name"], data["created"], data["moved"]) == ("Anna", True, 2)
    code, data, _ = cli("move", album.faces_of(0)[2], "--to", "Anna", "--create")
    assert (data["created"], data["moved"], data["person"]) == (False, 1, data["person"])
    code, out, _ = cli("undo", as_json=False)
    assert code == 0 and "Moved 1 face to Anna" in out
    code, out, _ = cli("undo", as_json=False)
    assert code == 0 and "New person Anna" in out
    assert album.lib.conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 0


def test_cluster_grouping_name_outliers_review_accept(album, cli):
    code, data, _ = cli("cluster", "--grouping", "1")
    assert code == 0 and data["clusters"] == 4
    with pytest.raises(SystemExit):  # argparse: not a level
        cli("cluster", "--grouping", "7")
    lib = album.lib
    cid = lib.face(album.faces_of(0)[0]).cluster_id
    stranger = album.photo([3])[0]
    lib.conn.execute("UPDATE faces SET cluster_id = ? WHERE id = ?", (cid, stranger))
    code, data, _ = cli("outliers", f"c{cid}")
    assert data == {"cluster": cid, "outliers": [stranger]}
    code, data, _ = cli("name", f"c{cid}", "Anna")
    assert code == 0 and data["review"] == [stranger] and "1 face to review" in data["done"]
    # more photos of Anna arrive: they wait in review, and one click takes the likely ones
    new = [album.photo([0])[0] for _ in range(3)]
    code, data, _ = cli("review")
    assert {s["face"] for s in data["suggestions"]} >= set(new)
    assert {s["label"] for s in data["suggestions"]} <= {"likely", "unsure"}
    likely = {s["face"] for s in data["suggestions"] if s["label"] == "likely"}
    code, data, _ = cli("accept-likely")
    assert code == 0 and data["accepted"] == len(likely) > 0
    assert all(lib.face(f).person_id is not None for f in likely)
    code, out, _ = cli("review", as_json=False)
    assert code == 0 and ("nothing to review" in out or "is Anna?" in out)


def test_reject_cluster(album, cli):
    lib = album.lib
    pid = people.create_person(lib, "Anna", album.faces_of(0)[:2]).person_id
    lib.conn.execute("INSERT INTO clusters(id, created_at) VALUES (50, 0)")
    lib.conn.executemany(
        "UPDATE faces SET cluster_id = 50 WHERE id = ?", [(f,) for f in album.faces_of(0)[2:]]
    )
    code, data, _ = cli("review")
    assert [c["cluster"] for c in data["clusters"]] == [50]
    code, data, _ = cli("reject-cluster", "c50", "--from", "Anna")
    assert code == 0 and data["done"] == "Cluster 50 is not Anna"
    assert cli("review")[1]["clusters"] == []
    code, _, err = cli("reject-cluster", f"p{pid}", "--from", "Anna")
    assert code == 2 and "not a cluster" in err


def test_suggestions_is_review_and_its_yes_joins_the_person(album, cli):
    """`suggestions` gives what `review` gives (one path); the "yes" it prints,
    `name c<ID> p<ID>`, merges the cluster into that person, it makes no person "p1"."""
    lib = album.lib
    pid = people.create_person(lib, "Anna", album.faces_of(0)[:2]).person_id
    lib.conn.execute("INSERT INTO clusters(id, created_at) VALUES (50, 0)")
    lib.conn.executemany(
        "UPDATE faces SET cluster_id = 50 WHERE id = ?", [(f,) for f in album.faces_of(0)[2:]]
    )
    assert cli("suggestions")[1] == cli("review")[1]
    code, out, _ = cli("suggestions", as_json=False)
    assert code == 0 and f"faceapp name c50 p{pid}" in out and "likely" in out
    code, data, _ = cli("name", "c50", f"p{pid}")
    assert code == 0 and data["person"] == pid and data["done"].startswith("Merged cluster 50")
    assert all(lib.face(f).person_id == pid for f in album.faces_of(0))
    names = [n for (n,) in lib.conn.execute("SELECT name FROM people")]
    assert names == ["Anna"]


def test_photos_birthday_cover(album, cli):
    lib = album.lib
    a = people.create_person(lib, "Anna", album.faces_of(0)).person_id
    people.create_person(lib, "Bo", album.faces_of(1))
    together = album.photo([0, 1], year=2020)
    people.move_faces(lib, [together[0]], a)
    code, data, _ = cli("photos", "--person", "Anna", "--person", "Bo")
    assert code == 0 and len(data["photos"]) == 0  # Bo in the new photo is not named yet
    code, out, _ = cli("photos", "--person", "Anna", as_json=False)
    assert out.splitlines()[-1].endswith("  Anna + 1 unnamed")  # not "Anna, ?"
    people.move_faces(lib, [together[1]], album_mod.parse_group_ref(lib, "Bo")[1])
    code, data, _ = cli("photos", "--person", "Anna", "--person", "Bo")
    (photo,) = data["photos"]
    assert photo["taken"].startswith("2020-06-01")
    assert [f["name"] for f in photo["faces"]] == ["Anna", "Bo"]
    assert all(len(f["box"]) == 4 for f in photo["faces"])
    code, data, _ = cli("photos", "--person", "Anna")
    dates = [p["taken"] for p in data["photos"]]
    assert len(dates) == 9 and dates == sorted(dates)
    code, _, err = cli("birthday", "Anna", "2003-01-01")
    assert code == 1 and "taken before 2003-01-01" in err
    code, data, _ = cli("birthday", "Anna", "1990-02-03")
    assert code == 0 and data["born"] == "1990-02-03"
    code, data, _ = cli("photos", "--person", "Anna")
    assert data["photos"][0]["faces"][0]["age"] == 10  # 2000-06-01
    code, out, _ = cli("photos", "--person", "Anna", as_json=False)
    assert "Anna (10)" in out
    code, data, _ = cli("birthday", "Anna", "--clear")
    assert code == 0 and data["born"] is None
    assert cli("birthday", "Anna", "soon")[0] == 1
    code, data, _ = cli("cover", album.faces_of(0)[3])
    assert code == 0 and data["person"] == a
    assert (
        next(g for g in album_mod.groups(lib) if g.id == a).avatar_face_id == album.faces_of(0)[3]
    )
    code, _, err = cli("cover", album.photo([2])[0])
    assert code == 1 and "not named yet" in err


def test_problems_lists_unreadable_files(album, cli):
    album.lib.store_photo_error("broken.jpg", size=3, mtime_ns=5, reason="the file is empty")
    code, data, _ = cli("problems")
    assert code == 0 and [(p["path"], p["reason"]) for p in data["problems"]] == [
        ("broken.jpg", "the file is empty")
    ]
    code, out, _ = cli("problems", as_json=False)
    assert "broken.jpg: the file is empty" in out


def test_review_without_the_network_keeps_the_plain_distances_for_small_faces(album, cli):
    """A small face is measured with the network before the queue is read; when the
    network cannot load, `review` says so in one line and still answers."""
    lib = album.lib
    people.create_person(lib, "Anna", album.faces_of(0)[:2])
    small = album.faces_of(0)[2]
    lib.conn.execute("UPDATE faces SET x2 = x1 + 14, y2 = y1 + 14 WHERE id = ?", (small,))
    lib.conn.commit()
    code, data, err = cli("review")
    assert code == 0 and small in {s["face"] for s in data["suggestions"]}
    assert err.count("\n") == 1 and "warning: small faces not measured" in err
