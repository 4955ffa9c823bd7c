"""Face tags end to end on real LFW faces: other programs' tags imported by a scan, the
app's tags written and read back by exiftool and by a new library, HEIC photos.

Each test photo shows two LFW people side by side (A left, B right, 500x250 as
displayed); many are stored rotated with an EXIF orientation, so a tag only lands on
the right face when the box orientation is handled.
"""

import io
import json
import shutil
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from faceapp.cli import main as cli_main
from faceapp.engine import album, face_tags, jpeg_xmp, library, model_versions, people, pipeline
from faceapp.engine.image_modes import orient

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None,
    reason="exiftool not installed (Debian: apt-get install libimage-exiftool-perl)",
)
INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}
PEOPLE = [
    ("George_W_Bush", "Colin_Powell"),
    ("Tony_Blair", "Donald_Rumsfeld"),
    ("Gerhard_Schroeder", "Ariel_Sharon"),
    ("Hugo_Chavez", "Jean_Chretien"),
    ("John_Ashcroft", "Junichiro_Koizumi"),
    ("Colin_Powell", "Tony_Blair"),
]
# where an LFW face sits in its 250x250 picture (deep-funneled: centred), display px
FACE_IN_HALF = (72.0, 68.0, 178.0, 190.0)


def name(lfw_person: str) -> str:
    return lfw_person.replace("_", " ")


def composite(lfw_dir: Path, a: str, b: str, k: int = 1) -> Image.Image:
    out = Image.new("RGB", (500, 250))
    for i, person in enumerate((a, b)):
        face = Image.open(lfw_dir / person / f"{person}_{k:04d}.jpg").convert("RGB")
        out.paste(face, (i * 250, 0))
    return out


def stored(display: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores for ``display`` shown with EXIF ``orientation``."""
    return orient(display, INVERSE[orientation])


def save_jpeg(path: Path, display: Image.Image, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Test Camera"
    stored(display, orientation).save(path, "JPEG", quality=92, exif=exif.tobytes())


def region(half: int, orientation: int) -> tuple[float, float, float, float]:
    """The normalised box of the face in ``half`` (0 left, 1 right) of the stored image."""
    x1, y1, x2, y2 = FACE_IN_HALF
    shown = ((x1 + 250 * half) / 500, y1 / 250, (x2 + 250 * half) / 500, y2 / 250)
    return face_tags.display_to_stored(shown, orientation)


def digikam_xmp(names_boxes, dims) -> bytes:
    """XMP as digiKam writes it: attributes, nested Descriptions, MWG + MP + TagsList."""
    mwg = "".join(
        f'<rdf:li><rdf:Description mwg-rs:Name="{n}" mwg-rs:Type="Face"><mwg-rs:Area'
        f' stArea:x="{(b[0] + b[2]) / 2:.6f}" stArea:y="{(b[1] + b[3]) / 2:.6f}"'
        f' stArea:w="{b[2] - b[0]:.6f}" stArea:h="{b[3] - b[1]:.6f}" stArea:unit="normalized"/>'
        "</rdf:Description></rdf:li>"
        for n, b in names_boxes
    )
    mp = "".join(
        f'<rdf:li MPReg:PersonDisplayName="{n}" MPReg:Rectangle="{b[0]:.6f}, {b[1]:.6f},'
        f' {b[2] - b[0]:.6f}, {b[3] - b[1]:.6f}"/>'
        for n, b in names_boxes
    )
    tags = "".join(f"<rdf:li>People/{n}</rdf:li>" for n, _ in names_boxes)
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:MP="http://ns.microsoft.com/photo/1.2/"
 xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
 xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#"
 xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
 xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
 xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#">
<digiKam:TagsList><rdf:Seq>{tags}</rdf:Seq></digiKam:TagsList>
<MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>{mp}</rdf:Bag></MPRI:Regions>
</MP:RegionInfo><mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:AppliedToDimensions
 stDim:w="{dims[0]}" stDim:h="{dims[1]}" stDim:unit="pixel"/><mwg-rs:RegionList><rdf:Bag>{mwg}
</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>""".encode()


def lightroom_xmp(names_boxes, dims) -> bytes:
    """XMP as Lightroom (and exiftool) write it: elements with rdf:parseType="Resource"."""
    items = "".join(
        f"""<rdf:li rdf:parseType="Resource"><mwg-rs:Area rdf:parseType="Resource">
<stArea:x>{(b[0] + b[2]) / 2}</stArea:x><stArea:y>{(b[1] + b[3]) / 2}</stArea:y>
<stArea:w>{b[2] - b[0]}</stArea:w><stArea:h>{b[3] - b[1]}</stArea:h>
<stArea:unit>normalized</stArea:unit></mwg-rs:Area><mwg-rs:Name>{n}</mwg-rs:Name>
<mwg-rs:Type>Face</mwg-rs:Type></rdf:li>"""
        for n, b in names_boxes
    )
    return f"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
 xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
 xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"><mwg-rs:Regions rdf:parseType="Resource">
<mwg-rs:AppliedToDimensions rdf:parseType="Resource"><stDim:w>{dims[0]}</stDim:w>
<stDim:h>{dims[1]}</stDim:h><stDim:unit>pixel</stDim:unit></mwg-rs:AppliedToDimensions>
<mwg-rs:RegionList><rdf:Bag>{items}</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>""".encode()


def rect64(box) -> int:
    return sum(round(v * 65535) << s for v, s in zip(box, (48, 32, 16, 0), strict=True))


def stored_dims(orientation: int) -> tuple[int, int]:
    return (250, 500) if orientation in (5, 6, 7, 8) else (500, 250)


@pytest.fixture(scope="module")
def analyzer(real_weights):
    return pipeline.Analyzer.from_weights(real_weights, "cpu")


def scan(folder, analyzer, real_weights, library_path=None):
    lib = library.open_library(folder, library_path)
    model_versions.register_base(lib, real_weights)
    return lib, pipeline.scan(lib, folder, analyzer)


def named_faces(lib) -> dict[str, list[tuple[str, tuple]]]:
    """photo -> [(name, box)] of the confirmed faces."""
    names = dict(lib.conn.execute("SELECT id, name FROM people").fetchall())
    out: dict[str, list] = {}
    for f in lib.faces():
        if f.person_id is not None:
            out.setdefault(f.photo_path, []).append((names[f.person_id], f.box))
    return out


def assert_on_the_right_faces(lib, expected: dict[str, tuple[str, str]]) -> None:
    got = named_faces(lib)
    for photo, (a, b) in expected.items():
        faces = dict(got.get(photo, []))
        assert set(faces) == {a, b}, (photo, got.get(photo))
        for who, half in ((a, 0), (b, 1)):
            cx = (faces[who][0] + faces[who][2]) / 2
            assert 250 * half < cx < 250 * (half + 1), (photo, who, faces[who])


def test_folder_tagged_by_digikam_lightroom_picasa_imports_every_name(
    tmp_path, lfw_dir, analyzer, real_weights
):
    root = tmp_path / "photos"
    root.mkdir()
    expected: dict[str, tuple[str, str]] = {}

    def photo(i: int, file: str, orientation: int) -> tuple[Path, list]:
        a, b = PEOPLE[i]
        path = root / file
        save_jpeg(path, composite(lfw_dir, a, b), orientation)
        expected[file] = (name(a), name(b))
        return path, [(name(a), region(0, orientation)), (name(b), region(1, orientation))]

    # digiKam, embedded, portrait phone photo (orientation 6)
    path, tags = photo(0, "dk_embedded.jpg", 6)
    path.write_bytes(jpeg_xmp.with_xmp(path.read_bytes(), digikam_xmp(tags, stored_dims(6))))
    # digiKam sidecar IMG.jpg.xmp, rotated the other way (orientation 8)
    path, tags = photo(1, "dk_sidecar.jpg", 8)
    (root / "dk_sidecar.jpg.xmp").write_bytes(digikam_xmp(tags, stored_dims(8)))
    # Lightroom sidecar IMG.xmp, upside down (orientation 3)
    path, tags = photo(2, "lr_sidecar.jpg", 3)
    (root / "lr_sidecar.xmp").write_bytes(lightroom_xmp(tags, stored_dims(3)))
    # Picasa: .picasa.ini rect64 + contacts.xml
    path, tags = photo(3, "picasa.jpg", 1)
    rect = [
        f"rect64({rect64(box):016x}),{cid}"
        for (_, box), cid in zip(tags, ("c0ffee01", "c0ffee02"), strict=True)
    ]
    (root / ".picasa.ini").write_text(f"[picasa.jpg]\nfaces={';'.join(rect)}\n")
    contacts = "".join(
        f'<contact id="{cid}" name="{n}"/>'
        for (n, _), cid in zip(tags, ("c0ffee01", "c0ffee02"), strict=True)
    )
    (root / "contacts.xml").write_text(f"<contacts>{contacts}</contacts>")
    if EXIFTOOL:  # written by exiftool itself: MWG embedded (orientation 6), MP only (8)
        path, tags = photo(4, "exiftool_mwg.jpg", 6)
        dims = stored_dims(6)
        regions = ",".join(
            f"{{Area={{X={(b[0] + b[2]) / 2},Y={(b[1] + b[3]) / 2},W={b[2] - b[0]},"
            f"H={b[3] - b[1]},Unit=normalized}},Name={n},Type=Face}}"
            for n, b in tags
        )
        dims_value = f"{{W={dims[0]},H={dims[1]},Unit=pixel}}"
        value = f"{{AppliedToDimensions={dims_value},RegionList=[{regions}]}}"
        subprocess.run(
            [EXIFTOOL, "-q", "-overwrite_original", f"-XMP-mwg-rs:RegionInfo={value}", str(path)],
            check=True,
        )
        path, tags = photo(5, "exiftool_mp.jpg", 8)
        mp = ",".join(
            f"{{Rectangle={b[0]}|, {b[1]}|, {b[2] - b[0]}|, {b[3] - b[1]},PersonDisplayName={n}}}"
            for n, b in tags
        )
        subprocess.run(
            [
                EXIFTOOL,
                "-q",
                "-overwrite_original",
                f"-XMP-MP:RegionInfoMP={{Regions=[{mp}]}}",
                str(path),
            ],
            check=True,
        )
    # a name without a box, on a photo of one person
    single = root / "names_only.jpg"
    Image.open(lfw_dir / "Hugo_Chavez" / "Hugo_Chavez_0002.jpg").save(single)
    (root / "names_only.jpg.xmp").write_bytes(
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        b' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        b"<Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Hugo Chavez</rdf:li></rdf:Bag>"
        b"</Iptc4xmpExt:PersonInImage></rdf:Description></rdf:RDF></x:xmpmeta>"
    )

    lib, report = scan(root, analyzer, real_weights)
    assert report.errors == [] and report.tags.errors == []
    assert report.tags.photos == len(expected) + 1
    assert report.tags.conflicts == 0
    assert_on_the_right_faces(lib, expected)
    assert [n for n, _ in named_faces(lib)["names_only.jpg"]] == ["Hugo Chavez"]
    # one person per name, across photos and sources
    names = [r[0] for r in lib.conn.execute("SELECT name FROM people")]
    assert len(names) == len(set(names))
    # the Chavez of names_only.jpg and of the composite are one person
    chavez = lib.conn.execute("SELECT id FROM people WHERE name = 'Hugo Chavez'").fetchone()[0]
    assert len(album.group_faces(lib, "person", chavez)) == 2


def test_user_labels_win_and_conflicts_are_listed(tmp_path, lfw_dir, analyzer, real_weights):
    root = tmp_path / "photos"
    root.mkdir()
    path = root / "a.jpg"
    save_jpeg(path, composite(lfw_dir, *PEOPLE[0]), 6)
    lib, _ = scan(root, analyzer, real_weights)
    left = min(lib.faces(), key=lambda f: f.box[0])
    people.create_person(lib, "Grandpa", [left.id])
    # another program tags the photo afterwards (the file changes: it is scanned again)
    tags = [("George W Bush", region(0, 6)), ("Colin Powell", region(1, 6))]
    path.write_bytes(jpeg_xmp.with_xmp(path.read_bytes(), digikam_xmp(tags, stored_dims(6))))
    _, report = scan(root, analyzer, real_weights)
    assert report.tags.conflicts == 1 and report.tags.confirmed == 1
    got = dict(named_faces(lib)["a.jpg"])
    assert set(got) == {"Grandpa", "Colin Powell"}  # the user's name stayed
    assert got["Grandpa"][0] < 250
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(["tag-conflicts", "--library", str(lib.path), "--json"]) == 0
    (conflict,) = json.loads(out.getvalue())["conflicts"]
    assert conflict["name"] == "George W Bush" and conflict["photo"] == "a.jpg"
    assert "Grandpa" in conflict["reason"]


def _exiftool_regions(path: Path) -> dict:
    out = subprocess.run(
        [
            EXIFTOOL,
            "-j",
            "-struct",
            "-RegionInfo",
            "-RegionInfoMP",
            "-PersonInImage",
            "-TagsList",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)[0]


@needs_exiftool
def test_round_trip_exiftool_reads_every_name_and_a_new_library_gets_them_back(
    tmp_path, lfw_dir, analyzer, real_weights
):
    root = tmp_path / "photos"
    root.mkdir()
    orientations = {"up.jpg": 1, "phone.jpg": 6, "upside.jpg": 3, "left.jpg": 8}
    for i, (file, o) in enumerate(orientations.items()):
        save_jpeg(root / file, composite(lfw_dir, *PEOPLE[i]), o)
    lib, _ = scan(root, analyzer, real_weights)
    for i, file in enumerate(orientations):
        photo_faces = sorted(
            (f for f in lib.faces() if f.photo_path == file), key=lambda f: f.box[0]
        )
        for face, who in zip((photo_faces[0], photo_faces[-1]), PEOPLE[i], strict=True):
            existing = lib.conn.execute(
                "SELECT id FROM people WHERE name = ?", (name(who),)
            ).fetchone()
            if existing:
                people.move_faces(lib, [face.id], existing[0])
            else:
                people.create_person(lib, name(who), [face.id])
    before = named_faces(lib)

    out = io.StringIO()
    with redirect_stdout(out):
        cli_main(["write-tags", "--library", str(lib.path), "--json"])
    report = json.loads(out.getvalue())
    assert {k: report[k] for k in ("photos", "written", "skipped", "errors")} == {
        "photos": 4,
        "written": 4,
        "skipped": 0,
        "errors": [],
    }
    for file, o in orientations.items():
        assert (root / file).read_bytes()[:2] == b"\xff\xd8"
        tags = _exiftool_regions(root / f"{file}.xmp")
        info = tags["RegionInfo"]
        dims = info["AppliedToDimensions"]
        assert (dims["W"], dims["H"]) == stored_dims(o)
        sw, sh = stored_dims(o)
        expected = {n: box for n, box in before[file]}
        assert sorted(r["Name"] for r in info["RegionList"]) == sorted(expected)
        assert sorted(tags["PersonInImage"]) == sorted(expected)
        assert sorted(tags["TagsList"]) == sorted(f"People/{n}" for n in expected)
        mp = {r["PersonDisplayName"]: r["Rectangle"] for r in tags["RegionInfoMP"]["Regions"]}
        for r in info["RegionList"]:
            a = r["Area"]
            got = (
                (a["X"] - a["W"] / 2) * sw,
                (a["Y"] - a["H"] / 2) * sh,
                (a["X"] + a["W"] / 2) * sw,
                (a["Y"] + a["H"] / 2) * sh,
            )
            # the library's box (display px), turned into the stored image by rotating pixels
            x1, y1, x2, y2 = expected[r["Name"]]
            want = face_tags.display_to_stored((x1 / 500, y1 / 250, x2 / 500, y2 / 250), o)
            want = (want[0] * sw, want[1] * sh, want[2] * sw, want[3] * sh)
            assert got == pytest.approx(want, abs=1.0)
            x, y, w, h = (float(v) for v in mp[r["Name"]].split(","))
            assert (x * sw, y * sh, (x + w) * sw, (y + h) * sh) == pytest.approx(want, abs=1.0)

    # a second write changes nothing
    out = io.StringIO()
    with redirect_stdout(out):
        cli_main(["write-tags", "--library", str(lib.path), "--json"])
    assert json.loads(out.getvalue())["skipped"] == 4

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    lib2, report2 = scan(copy, analyzer, real_weights, tmp_path / "new.sqlite")
    assert report2.tags.confirmed == 8 and report2.tags.added == 0
    after = named_faces(lib2)
    assert {p: sorted(n for n, _ in v) for p, v in after.items()} == {
        p: sorted(n for n, _ in v) for p, v in before.items()
    }
    for photo, faces in before.items():
        boxes = dict(after[photo])
        for who, box in faces:
            assert boxes[who] == pytest.approx(box, abs=1.0)


def test_heic_photos_are_scanned_upright_with_their_date(tmp_path, lfw_dir, analyzer, real_weights):
    root = tmp_path / "photos"
    root.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # as an iPhone held upright stores it
    exif.get_ifd(0x8769)[0x9003] = "2021:05:06 07:08:09"
    display = composite(lfw_dir, *PEOPLE[1])
    stored(display, 6).save(root / "IMG_0001.HEIC", format="HEIF", exif=exif.tobytes())
    display.save(root / "IMG_0002.heic", format="HEIF", quality=90)
    # a HEIC tagged in a sidecar, boxes of the stored image
    tags = [(name(a), region(i, 6)) for i, a in enumerate(PEOPLE[1])]
    (root / "IMG_0001.HEIC.xmp").write_bytes(digikam_xmp(tags, stored_dims(6)))
    with Image.open(root / "IMG_0001.HEIC") as im:
        assert im.format == "HEIF"
        assert im.getexif().get_ifd(0x8769)[0x9003] == "2021:05:06 07:08:09"
    lib, report = scan(root, analyzer, real_weights)
    assert report.photos == 2 and report.errors == []
    for state in lib.conn.execute("SELECT width, height FROM photos"):
        assert state == (500, 250)
    for photo in ("IMG_0001.HEIC", "IMG_0002.heic"):
        faces = [f for f in lib.faces() if f.photo_path == photo]
        centres = sorted((f.box[0] + f.box[2]) / 2 for f in faces if f.prob > 0.95)
        assert centres[0] < 250 < centres[-1], (photo, [f.box for f in faces])
    assert_on_the_right_faces(lib, {"IMG_0001.HEIC": (name(PEOPLE[1][0]), name(PEOPLE[1][1]))})
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(["faces", "--library", str(lib.path), "--csv"]) == 0
    rows = [r.split(",") for r in out.getvalue().splitlines()]
    assert rows[0][-1] == "date_taken"
    dates = {r[1]: r[-1] for r in rows[1:]}
    assert dates["IMG_0001.HEIC"] == "2021-05-06T07:08:09"  # EXIF date taken of a HEIC


def test_avif_is_found_and_scanned(tmp_path, lfw_dir, analyzer, real_weights):
    root = tmp_path / "photos"
    root.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 8
    stored(composite(lfw_dir, *PEOPLE[2]), 8).save(root / "a.avif", exif=exif.tobytes())
    lib, report = scan(root, analyzer, real_weights)
    assert report.photos == 1 and report.errors == []
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in lib.faces())
    assert len(centres) >= 2 and centres[0] < 250 < centres[-1]
    assert pillow_heif.__version__  # HEIF support stays a declared dependency


def test_tagged_box_without_a_detected_face_becomes_a_face_added_by_hand(
    tmp_path, lfw_dir, analyzer, real_weights
):
    root = tmp_path / "photos"
    root.mkdir()
    a, b = PEOPLE[3]
    display = composite(lfw_dir, a, b)
    # B lies on its side: MTCNN finds upright faces only, so only A is detected
    side = display.crop((250, 0, 500, 250)).transpose(Image.Transpose.ROTATE_90)
    display.paste(side, (250, 0))
    save_jpeg(root / "a.jpg", display, 6)
    lying = face_tags.display_to_stored((318 / 500, 72 / 250, 440 / 500, 178 / 250), 6)
    tags = [(name(a), region(0, 6)), (name(b), lying)]
    (root / "a.jpg.xmp").write_bytes(digikam_xmp(tags, stored_dims(6)))
    lib, report = scan(root, analyzer, real_weights)
    assert (report.tags.confirmed, report.tags.added) == (2, 1)
    got = dict(named_faces(lib)["a.jpg"])
    assert got[name(b)] == pytest.approx((318, 72, 440, 178), abs=1.0)
    added = next(f for f in lib.faces() if f.box == got[name(b)])
    assert added.prob == 1.0 and lib.face_landmarks(added.id) == []
    ids, vectors = lib.embeddings()
    row = ids.tolist().index(added.id)  # embedded like a detected face
    assert abs(float((vectors[row] ** 2).sum()) - 1.0) < 1e-4
    assert Image.open(io.BytesIO(lib.face_crop(added.id))).size == (160, 160)
