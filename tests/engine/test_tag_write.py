"""write-tags on many real JPEGs: pixels and EXIF kept, atomic under SIGKILL, no rescan,
failures and read-only files leave everything as it was."""

import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceapp.cli import main as cli_main
from faceapp.engine import jpeg_xmp, library, library_photos, people, pipeline, tag_write, xmp_faces
from faceapp.engine.scan_decode import file_hash

BOX = (72.0, 68.0, 178.0, 190.0)  # where the face of a deep-funneled LFW photo is


def make_folder(root: Path, lfw_dir: Path, n: int) -> dict[str, str]:
    """``n`` LFW photos with camera EXIF; returns photo -> person's name."""
    root.mkdir()
    out = {}
    sources = sorted(lfw_dir.glob("*/*_0001.jpg"))[:n]
    for i, src in enumerate(sources):
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS 5D", 1
        exif.get_ifd(0x8769)[0x9003] = f"2019:01:{i % 28 + 1:02d} 10:00:00"
        name = f"IMG_{i:04d}.jpg"
        Image.open(src).save(root / name, "JPEG", quality=90, exif=exif.tobytes())
        out[name] = src.parent.name.replace("_", " ")
    return out


def make_library(root: Path, names: dict[str, str]) -> library.Library:
    """A library of the folder with one confirmed face per photo (stored, not detected:
    these tests are about writing files)."""
    lib = library.open_library(root)
    model = lib.add_model(
        name="test",
        source="casia-webface",
        origin="-",
        sha256="0" * 64,
        preprocess="fixed",
        threshold=1.0,
        threshold_source="test",
    )
    lib.set_active_model(model)
    rng = np.random.default_rng(0)
    for rel, who in names.items():
        path = root / rel
        st = path.stat()
        vector = rng.normal(size=512).astype(np.float32)
        face = library_photos.NewFace(BOX, [], 1.0, b"jpeg", vector / np.linalg.norm(vector))
        pid = lib.store_photo(
            rel,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            width=250,
            height=250,
            content_hash=file_hash(path),
            faces=[face],
            model_id=model,
        )
        fid = lib.faces_of_photo(pid)[0].id
        row = lib.conn.execute("SELECT id FROM people WHERE name = ?", (who,)).fetchone()
        if row:
            people.move_faces(lib, [fid], row[0])
        else:
            people.create_person(lib, who, [fid])
    return lib


def pixels(path: Path) -> str:
    with Image.open(path) as im:
        return hashlib.sha256(im.tobytes()).hexdigest()


def exif_of(path: Path) -> dict:
    with Image.open(path) as im:
        exif = im.getexif()
        return {**dict(exif), **{f"exif:{k}": v for k, v in exif.get_ifd(0x8769).items()}}


def run_json(*args: str) -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        cli_main(list(args))
    return json.loads(out.getvalue())


def check_embedded(root: Path, names: dict[str, str], before: dict) -> None:
    for rel, who in names.items():
        path = root / rel
        assert pixels(path) == before[rel][0], rel
        assert exif_of(path) == before[rel][1], rel
        regions = xmp_faces.read(jpeg_xmp.read_xmp(path.read_bytes())).regions
        got = next(r for r in regions if r.source == "mwg")
        assert got.name == who
        assert np.allclose(np.array(got.box) * 250, BOX, atol=1.0)


def snapshot(root: Path, names) -> dict:
    return {rel: (pixels(root / rel), exif_of(root / rel)) for rel in names}


@pytest.mark.slow
def test_embed_200_jpegs_keeps_pixels_and_exif_and_no_rescan(tmp_path, lfw_dir, real_weights):
    root = tmp_path / "photos"
    names = make_folder(root, lfw_dir, 200)
    lib = make_library(root, names)
    before = snapshot(root, names)
    dry = run_json("write-tags", "--library", str(lib.path), "--embed", "--dry-run", "--json")
    assert dry["written"] == 200 and len(dry["changes"]) == 200
    assert snapshot(root, names) == before
    assert jpeg_xmp.read_xmp((root / "IMG_0000.jpg").read_bytes()) is None
    report = run_json("write-tags", "--library", str(lib.path), "--embed", "--json")
    assert report["written"] == 200 and report["errors"] == []
    assert not list(root.glob("*.xmp")) and not list(root.glob(".*"))  # no sidecars, no temps
    check_embedded(root, names, before)
    # the photos changed on disk, but not as photos: a scan keeps every face and label
    faces_before = [(f.id, f.person_id) for f in lib.faces()]
    analyzer = pipeline.Analyzer.from_weights(real_weights, "cpu")
    scan = pipeline.scan(lib, root, analyzer)
    assert (scan.photos, scan.skipped_unchanged, scan.moved) == (0, 200, 0)
    assert [(f.id, f.person_id) for f in lib.faces()] == faces_before


@pytest.mark.slow
def test_sigkill_while_embedding_leaves_every_photo_old_or_new(tmp_path, lfw_dir):
    root = tmp_path / "photos"
    names = make_folder(root, lfw_dir, 200)
    lib = make_library(root, names)
    before = snapshot(root, names)
    original = {rel: (root / rel).read_bytes() for rel in names}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    command = [
        sys.executable,
        "-m",
        "faceapp",
        "write-tags",
        "--library",
        str(lib.path),
        "--embed",
        "--json",
    ]
    rng = random.Random(1)
    killed_midway = 0
    recorded = {rel: ((root / rel).stat(), file_hash(root / rel)) for rel in names}
    for _ in range(3):
        for rel, data in original.items():  # every round starts from the untagged photos
            (root / rel).write_bytes(data)
            st, digest = recorded[rel]
            os.utime(root / rel, ns=(st.st_atime_ns, st.st_mtime_ns))
            with lib.transaction() as c:  # ... as the library recorded them
                c.execute(
                    "UPDATE photos SET size = ?, mtime_ns = ?, content_hash = ? WHERE path = ?",
                    (st.st_size, st.st_mtime_ns, digest, rel),
                )
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any((root / rel).stat().st_size != len(original[rel]) for rel in names):
                break  # writing has begun
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        new = 0
        for rel in names:
            data = (root / rel).read_bytes()
            assert pixels(root / rel) == before[rel][0], rel  # readable, same pixels
            assert exif_of(root / rel) == before[rel][1], rel
            xmp = jpeg_xmp.read_xmp(data)
            if xmp is None:
                assert data == original[rel]  # old, byte for byte
            else:
                new += 1
                (region,) = [r for r in xmp_faces.read(xmp).regions if r.source == "mwg"]
                assert region.name == names[rel]
        killed_midway += 0 < new < len(names)
        conn = sqlite3.connect(lib.path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    assert killed_midway >= 1  # at least one kill landed in the middle of the writing
    report = run_json("write-tags", "--library", str(lib.path), "--embed", "--json")
    assert report["errors"] == []
    check_embedded(root, names, before)
    assert not list(root.glob(".*"))  # temporary files of the killed runs are cleaned up


def test_embed_and_sidecars_small_folder(tmp_path, lfw_dir, real_weights):
    root = tmp_path / "photos"
    names = make_folder(root, lfw_dir, 6)
    lib = make_library(root, names)
    before = snapshot(root, names)
    report = run_json("write-tags", "--library", str(lib.path), "--embed", "--json")
    assert (report["photos"], report["written"], report["skipped"]) == (6, 6, 0)
    check_embedded(root, names, before)
    again = run_json("write-tags", "--library", str(lib.path), "--embed", "--json")
    assert (again["written"], again["skipped"]) == (0, 6)
    analyzer = pipeline.Analyzer.from_weights(real_weights, "cpu")
    assert pipeline.scan(lib, root, analyzer).photos == 0
    # a photo edited after the scan is not embedded into (its new record would hide the edit)
    edited = root / "IMG_0001.jpg"
    os.utime(edited, ns=(edited.stat().st_atime_ns, edited.stat().st_mtime_ns + 10**9))
    people.rename_person(lib, lib.faces()[1].person_id, "Renamed")
    report = run_json("write-tags", "--library", str(lib.path), "--embed", "--json")
    assert report["errors"] == [
        {
            "path": "IMG_0001.jpg",
            "reason": "the photo changed since it was scanned; scan the folder again",
        }
    ]
    # --person: only that person's photos
    first = names["IMG_0000.jpg"]
    dry = run_json(
        "write-tags", "--library", str(lib.path), "--person", first, "--dry-run", "--json"
    )
    assert [c["path"] for c in dry["changes"]] == ["IMG_0000.jpg"]
    assert dry["changes"][0]["target"] == "IMG_0000.jpg.xmp"


def test_failed_write_keeps_the_earlier_sidecar_and_read_only_is_skipped(
    tmp_path, lfw_dir, monkeypatch
):
    root = tmp_path / "photos"
    names = make_folder(root, lfw_dir, 3)
    lib = make_library(root, names)
    assert tag_write.write_tags(lib).written == 3
    sidecar = root / "IMG_0000.jpg.xmp"
    earlier = sidecar.read_bytes()
    people.rename_person(lib, lib.faces()[0].person_id, "Somebody Else")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tag_write.os, "replace", broken_replace)
    report = tag_write.write_tags(lib)
    assert report.written == 0 and report.errors == [("IMG_0000.jpg", "No space left on device")]
    assert sidecar.read_bytes() == earlier
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [*names, *(f"{n}.xmp" for n in names)]
    )  # no temporary file left
    monkeypatch.undo()
    sidecar.chmod(0o444)
    (root / "IMG_0001.jpg").chmod(0o444)
    if os.geteuid() == 0:  # root may write anything: judge by the permission bits instead
        monkeypatch.setattr(
            tag_write.os, "access", lambda p, mode: bool(os.stat(p).st_mode & stat.S_IWUSR)
        )
    try:
        report = tag_write.write_tags(lib, embed=True)
        assert ("IMG_0000.jpg", "read-only file; skipped") not in report.errors  # embeds
        assert ("IMG_0001.jpg", "read-only file; skipped") in report.errors
        assert report.written == 2  # into IMG_0000 and IMG_0002
        assert xmp_faces.read(jpeg_xmp.read_xmp((root / "IMG_0000.jpg").read_bytes()))
        root.chmod(0o555)
        report = tag_write.write_tags(lib, embed=False)
        assert report.errors and all(r == "read-only folder; skipped" for _, r in report.errors)
    finally:
        root.chmod(0o755)
        sidecar.chmod(0o644)
        (root / "IMG_0001.jpg").chmod(0o644)


def test_export_copies_or_links_a_persons_photos_and_faces_csv(tmp_path, lfw_dir, capsys):
    root = tmp_path / "photos"
    names = make_folder(root, lfw_dir, 4)
    (root / "sub").mkdir()
    (root / "sub" / "IMG_0000.jpg").write_bytes((root / "IMG_0000.jpg").read_bytes())
    names["sub/IMG_0000.jpg"] = names["IMG_0000.jpg"]  # same person, same file name
    lib = make_library(root, names)
    who = names["IMG_0000.jpg"]
    copy = run_json(
        "export",
        "--library",
        str(lib.path),
        "--person",
        who,
        "--to",
        str(tmp_path / "out"),
        "--json",
    )
    assert (copy["photos"], copy["exported"]) == (2, 2)
    assert sorted(copy["files"]) == ["IMG_0000 (2).jpg", "IMG_0000.jpg"]
    out = tmp_path / "out"
    assert (out / "IMG_0000.jpg").read_bytes() == (root / "IMG_0000.jpg").read_bytes()
    assert not (out / "IMG_0000.jpg").is_symlink()
    link = run_json(
        "export",
        "--library",
        str(lib.path),
        "--person",
        who,
        "--to",
        str(tmp_path / "links"),
        "--link",
        "--json",
    )
    assert link["exported"] == 2
    assert (tmp_path / "links" / "IMG_0000.jpg").resolve() == (root / "IMG_0000.jpg").resolve()
    capsys.readouterr()
    assert cli_main(["faces", "--library", str(lib.path), "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "face,photo,x1,y1,x2,y2,person,cluster,date_taken"
    assert len(rows) == 1 + len(names)
    assert f",IMG_0000.jpg,72.0,68.0,178.0,190.0,{who}," in rows[1]  # dates: test_face_tags


def test_rewrite_drops_names_the_user_removed_and_keeps_other_programs_regions(tmp_path, lfw_dir):
    root = tmp_path / "photos"
    names = make_folder(root, lfw_dir, 2)
    lib = make_library(root, names)
    assert tag_write.write_tags(lib).written == 2
    sidecar = root / "IMG_0000.jpg.xmp"
    # another program adds its own region to the sidecar meanwhile
    theirs = xmp_faces.read(sidecar.read_bytes())
    foreign = sidecar.read_bytes().replace(b"<fa:Origin>Face Album</fa:Origin>", b"", 1)
    foreign = foreign.replace(names["IMG_0000.jpg"].encode(), b"Somebody", 1)
    ours = xmp_faces.merge(foreign, [xmp_faces.NewRegion("X", (0.1, 0.1, 0.2, 0.2))], (250, 250))
    sidecar.write_bytes(ours)
    assert any(r.name == "Somebody" and not r.ours for r in xmp_faces.read(ours).regions)
    people.delete_person(lib, lib.faces_of_photo(lib.faces()[0].photo_id)[0].person_id)
    report = tag_write.write_tags(lib)
    assert report.written == 1 and report.errors == []
    regions = xmp_faces.read(sidecar.read_bytes()).regions
    assert {(r.name, r.source) for r in regions if r.box} == {("Somebody", "mwg")}
    assert not any(r.ours for r in regions)
    assert theirs.applied_to == (250, 250)
    # nothing left to write: the photo is no longer one the app tagged
    assert tag_write.write_tags(lib).written == 0
