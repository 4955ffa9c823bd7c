"""From people to photos: photos together, by date, covers, scan problems, old
libraries getting their dates."""

from __future__ import annotations

import os
import re
import sqlite3

import pytest
from PIL import Image
from synthetic_album import Album

from faceapp.engine import album as album_mod
from faceapp.engine import library_schema, oplog, people, photos
from faceapp.engine.library import Library, LibraryError


@pytest.fixture
def album(tmp_path):
    a = Album(tmp_path / "lib.sqlite", identities=3, per_identity=4)
    yield a
    a.lib.close()


def test_photos_with_all_given_people_by_date(album):
    lib = album.lib
    anna = people.create_person(lib, "Anna", album.faces_of(0)).person_id
    bo = people.create_person(lib, "Bo", album.faces_of(1)).person_id
    late = album.photo([1, 0], year=2015)
    early = album.photo([0, 1, 2], year=1999)
    people.move_faces(lib, [late[1], early[0]], anna)
    people.move_faces(lib, [late[0], early[1]], bo)
    both = photos.photos_with(lib, [anna, bo])
    assert [p.id for p in both] == [lib.face(early[0]).photo_id, lib.face(late[0]).photo_id]
    assert both[0].taken_at == "1999-06-01T12:00:00"
    assert [(f.name, f.face_id) for f in both[0].faces] == [
        ("Anna", early[0]),
        ("Bo", early[1]),
        (None, early[2]),
    ]
    assert [p.taken_at[:4] for p in photos.photos_with(lib, [anna])] == [
        "1999", "2000", "2001", "2002", "2003", "2015"
    ]  # fmt: skip
    assert len(photos.photos_with(lib)) == lib.counts()["photos"]
    with pytest.raises(LibraryError, match="no person 999"):
        photos.photos_with(lib, [999])
    as_dict = both[0].as_dict()
    assert as_dict["faces"][0] == {"face": early[0], "person": anna, "name": "Anna",
                                   "box": [10.0, 10.0, 60.0, 60.0]}  # fmt: skip


def test_cover_face_is_the_users_choice_while_it_stays_theirs(album):
    lib = album.lib
    anna = people.create_person(lib, "Anna", album.faces_of(0)).person_id
    chosen = album.faces_of(0)[2]
    with pytest.raises(LibraryError, match="not one of Anna's faces"):
        photos.set_cover(lib, anna, album.faces_of(1)[0])
    before = photos.cover_face(lib, anna)
    photos.set_cover(lib, anna, chosen)
    assert photos.cover_face(lib, anna) == chosen
    assert oplog.undo(lib).description == "New picture for Anna"
    assert photos.cover_face(lib, anna) == before is None
    oplog.redo(lib)
    assert photos.cover_face(lib, anna) == chosen
    assert next(g for g in album_mod.groups(lib) if g.id == anna).avatar_face_id == chosen
    people.reject_faces(lib, [chosen], anna)  # no longer hers: back to automatic
    assert photos.cover_face(lib, anna) is None
    assert next(g for g in album_mod.groups(lib) if g.id == anna).avatar_face_id != chosen


def test_problems_list_path_reason_and_time(album):
    lib = album.lib
    assert photos.problems(lib) == []
    lib.store_photo_error("a/bad.jpg", size=1, mtime_ns=1, reason="truncated image data")
    (p,) = photos.problems(lib)
    assert (p.path, p.reason) == ("a/bad.jpg", "truncated image data") and p.when > 0


def test_old_library_migrates_and_gets_its_dates(tmp_path):
    """A library from before dates (the previous version) opens with every label kept;
    the dates of its photos are read from the files' EXIF (else their time) afterwards."""
    root = tmp_path / "photos"
    root.mkdir()
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2011:04:05 06:07:08"
    Image.new("RGB", (8, 8)).save(root / "exif.jpg", exif=exif)
    Image.new("RGB", (8, 8)).save(root / "plain.jpg")
    os.utime(root / "plain.jpg", (1_300_000_000, 1_300_000_000))
    v2_schema = library_schema.SCHEMA.replace(library_schema.SMALL_MATCHES, "")
    lines = [line.split("--")[0] for line in v2_schema.splitlines()]
    new_columns = ("taken_at", "manual", "birth_date", "cover_face_id")
    v1 = "\n".join(
        ln
        for ln in lines
        if ln.split()[:1] not in ([c] for c in new_columns) and "models_base" not in ln
    )
    v1 = re.sub(r",\s*\)", "\n)", v1)  # the comma before a removed last column
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(v1)
    conn.execute(
        "INSERT INTO meta VALUES ('schema_version', ?), ('root', ?)",
        ("2", str(root)),
    )
    for k, name in enumerate(("exif.jpg", "plain.jpg")):
        conn.execute(
            "INSERT INTO photos(path, size, mtime_ns, status, scanned_at) VALUES (?,1,1,'ok',0)",
            (name,),
        )
        conn.execute(
            "INSERT INTO faces(photo_id, x1, y1, x2, y2, landmarks, prob, created_at)"
            " VALUES (?, 0, 0, 4, 4, '[]', 1, 0)",
            (k + 1,),
        )
    conn.execute("INSERT INTO people(name, hidden, created_at) VALUES ('Anna', 0, 0)")
    conn.execute("UPDATE faces SET person_id = 1 WHERE id = 1")
    conn.commit()
    conn.close()
    lib = Library(path)
    assert lib.get_meta("schema_version") == str(library_schema.SCHEMA_VERSION)
    assert lib.conn.execute("SELECT person_id, manual FROM faces ORDER BY id").fetchall() == [
        (1, 0),
        (None, 0),
    ]
    assert photos.fill_missing_dates(lib) == 2
    taken = dict(lib.conn.execute("SELECT path, taken_at FROM photos").fetchall())
    assert taken["exif.jpg"] == "2011-04-05T06:07:08"
    assert taken["plain.jpg"][:4] == "2011"  # 2011-03-13 local time, from the file's time
    assert photos.fill_missing_dates(lib) == 0
    lib.close()
