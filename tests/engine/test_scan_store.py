"""Never lose a label when photos move, are renamed, swapped, deleted and come back, or when
two scans of one library run at once (a fake analyzer stands in for the networks).
"""

from __future__ import annotations

import shutil
import threading

import pytest
from fake_scan import (
    FakeAnalyzer,
    face_by_content,
    label_people,
    labels,
    lfw_folder,
    new_library,
)

from faceapp.engine import (
    album,
    people,
    pipeline,
)
from faceapp.engine.cluster import recluster
from faceapp.engine.library import Library

# ----------------------------------------------------------------------------- moved and deleted


@pytest.fixture
def labelled(tmp_path, lfw_dir):
    """A scanned folder of 4 people x 3 LFW photos, every face named, one rejection."""
    root = tmp_path / "photos"
    lfw_folder(root, lfw_dir)
    lib = new_library(tmp_path / "lib.sqlite", root)
    pipeline.scan(lib, root, FakeAnalyzer())
    label_people(lib)
    return lib, root


def rejections(lib: Library) -> set[tuple[int, int]]:
    return set(lib.conn.execute("SELECT face_id, person_id FROM rejections").fetchall())


def test_moved_and_renamed_photos_keep_their_faces_and_labels(labelled):
    lib, root = labelled
    before, rejected, by_content = labels(lib), rejections(lib), face_by_content(lib)
    assert len(before) == 12 and len(rejected) == 1
    bush = sorted((root / "George_W_Bush").iterdir())
    bush[0].rename(root / "George_W_Bush" / "renamed.jpg")  # rename
    (root / "2004" / "trip").mkdir(parents=True)
    bush[1].rename(root / "2004" / "trip" / bush[1].name)  # move into a new folder
    (root / "Colin_Powell").rename(root / "2004" / "colin")  # move a whole folder
    report = pipeline.scan(lib, root, FakeAnalyzer())
    assert report.moved == 5 and report.photos == 0 and report.missing == 0
    assert labels(lib) == before and rejections(lib) == rejected
    assert face_by_content(lib) == by_content
    assert {g.name: g.count for g in album.groups(lib) if g.kind == "person"} == {
        "Colin Powell": 3,
        "Donald Rumsfeld": 3,
        "George W Bush": 3,
        "Tony Blair": 3,
    }


def test_swapped_and_renumbered_names_keep_labels_on_the_right_faces(labelled):
    """Renames that reuse names: each label must follow its photo's content, not its name."""
    lib, root = labelled
    before = face_by_content(lib)
    blair = sorted((root / "Tony_Blair").iterdir())
    bush = sorted((root / "George_W_Bush").iterdir())
    # swap a Blair photo and a Bush photo
    tmp = root / "swap.tmp"
    blair[0].rename(tmp)
    bush[0].rename(blair[0])
    tmp.rename(bush[0])
    # renumber Rumsfeld after deleting his first photo: 2 -> 1, 3 -> 2
    rums = sorted((root / "Donald_Rumsfeld").iterdir())
    gone = rums[0].read_bytes()
    rums[0].unlink()
    rums[1].rename(rums[0])
    rums[2].rename(rums[1])
    report = pipeline.scan(lib, root, FakeAnalyzer())
    after = face_by_content(lib)
    assert {h: after[h] for h in after} == {h: before[h] for h in after}, "labels followed names"
    assert len(after) == 11 and report.photos == 0
    # the deleted photo's face keeps its label while it is away, and returns with it
    (root / "back.jpg").write_bytes(gone)
    pipeline.scan(lib, root, FakeAnalyzer())
    assert face_by_content(lib) == before


def test_deleted_photos_leave_the_views_and_come_back_with_their_labels(labelled):
    lib, root = labelled
    before, rejected = labels(lib), rejections(lib)
    counts = {g.name: g.count for g in album.groups(lib) if g.kind == "person"}
    away = root.parent / "away"
    away.mkdir()
    blair = sorted((root / "Tony_Blair").iterdir())
    for path in blair[:2]:
        shutil.move(path, away / path.name)  # gone from the folder (new mtime when back)
    report = pipeline.scan(lib, root, FakeAnalyzer())
    assert report.missing == 2
    gone = {f.id for f in lib.faces(include_missing=True)} - {f.id for f in lib.faces()}
    assert len(gone) == 2
    assert not gone & set(lib.embeddings()[0])
    blair_id = album.parse_group_ref(lib, "Tony Blair")[1]
    assert not gone & set(album.group_faces(lib, "person", blair_id))
    assert {g.name: g.count for g in album.groups(lib) if g.kind == "person"} == counts | {
        "Tony Blair": 1
    }
    recluster(lib)  # clustering and edits meanwhile do not touch the absent faces' labels
    people.rename_person(lib, blair_id, "Tony Blair (PM)")
    assert {i: n for i, n in labels(lib).items() if i in gone} == {
        i: "Tony Blair (PM)" for i in gone
    }
    people.rename_person(lib, blair_id, "Tony Blair")
    for path in away.iterdir():
        shutil.copy(path, root / "Tony_Blair" / path.name)  # back, with a new mtime
    report = pipeline.scan(lib, root, FakeAnalyzer())
    assert report.photos == 0 and report.missing == 0  # not analysed again
    assert labels(lib) == before and rejections(lib) == rejected
    assert {g.name: g.count for g in album.groups(lib) if g.kind == "person"} == counts


def test_two_scans_of_one_library_at_once_store_each_face_once(labelled, lfw_dir):
    """The GUI and the CLI scanning the same folder together (two connections)."""
    lib, root = labelled
    before = labels(lib)
    extra = sorted((lfw_dir / "Gerhard_Schroeder").glob("*.jpg"))[:12]
    (root / "new").mkdir()
    for src in extra:
        shutil.copy(src, root / "new" / src.name)
    errors = []

    def scan() -> None:
        try:
            pipeline.scan(Library(lib.path), root, FakeAnalyzer())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    per_photo = lib.conn.execute("SELECT photo_id, COUNT(*) FROM faces GROUP BY photo_id")
    assert {n for _, n in per_photo} == {1}
    assert lib.counts() | {"people": 0} == {"photos": 24, "errors": 0, "faces": 24, "people": 0}
    assert labels(lib) == before
    assert lib.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
