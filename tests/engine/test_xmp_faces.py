"""Face tags in XMP, JPEG segments and Picasa files: parsing and writing, no models."""

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from faceapp.engine import face_tags, jpeg_xmp, picasa, xmp_faces
from faceapp.engine.image_modes import orient

# digiKam's spelling: struct fields as attributes, nested rdf:Description; both region forms
DIGIKAM = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:MP="http://ns.microsoft.com/photo/1.2/"
    xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
    xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#"
    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
    xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
    xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#">
   <digiKam:TagsList><rdf:Seq>
     <rdf:li>People/Ann Smith</rdf:li><rdf:li>People/Unknown</rdf:li><rdf:li>Places/Paris</rdf:li>
   </rdf:Seq></digiKam:TagsList>
   <MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>
     <rdf:li MPReg:Rectangle="0.1, 0.2, 0.2, 0.3" MPReg:PersonDisplayName="Ann Smith"/>
   </rdf:Bag></MPRI:Regions></MP:RegionInfo>
   <mwg-rs:Regions rdf:parseType="Resource">
    <mwg-rs:AppliedToDimensions stDim:w="400" stDim:h="300" stDim:unit="pixel"/>
    <mwg-rs:RegionList><rdf:Bag>
     <rdf:li><rdf:Description mwg-rs:Name="Ann Smith" mwg-rs:Type="Face">
       <mwg-rs:Area stArea:x="0.2" stArea:y="0.35" stArea:w="0.2" stArea:h="0.3"
        stArea:unit="normalized"/>
     </rdf:Description></rdf:li>
     <rdf:li><rdf:Description mwg-rs:Name="Sign" mwg-rs:Type="Focus">
       <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1"
        stArea:unit="normalized"/>
     </rdf:Description></rdf:li>
    </rdf:Bag></mwg-rs:RegionList>
   </mwg-rs:Regions>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def test_reads_digikam_regions_names_and_tags():
    tags = xmp_faces.read(DIGIKAM)
    assert tags.applied_to == (400, 300)
    by_source = {(r.source, r.name): r.box for r in tags.regions}
    assert by_source[("mwg", "Ann Smith")] == pytest.approx((0.1, 0.2, 0.3, 0.5))
    assert by_source[("mp", "Ann Smith")] == pytest.approx((0.1, 0.2, 0.3, 0.5))
    assert by_source[("digikam", "Ann Smith")] is None
    assert {r.name for r in tags.regions} == {"Ann Smith"}  # no Focus region, no Unknown
    assert not any(r.ours for r in tags.regions)


def test_merge_keeps_other_programs_regions_and_replaces_its_own():
    first = xmp_faces.merge(DIGIKAM, [xmp_faces.NewRegion("Bob", (0.6, 0.1, 0.8, 0.4))], (400, 300))
    second = xmp_faces.merge(first, [xmp_faces.NewRegion("Cy", (0.6, 0.5, 0.8, 0.9))], (400, 300))
    regions = xmp_faces.read(second).regions
    names = sorted((r.source, r.name, r.ours) for r in regions)
    assert ("mwg", "Ann Smith", False) in names and ("mp", "Ann Smith", False) in names
    assert ("mwg", "Cy", True) in names and ("mp", "Cy", True) in names
    assert not any(r.name == "Bob" for r in regions)  # our earlier region was replaced
    tags = [r.name for r in regions if r.source == "digikam"]
    assert sorted(tags) == ["Ann Smith", "Cy"]
    assert b"Places/Paris" in second  # other tags are kept
    assert xmp_faces.read(second).applied_to == (400, 300)
    cy = next(r for r in regions if r.name == "Cy" and r.source == "mwg")
    assert cy.box == pytest.approx((0.6, 0.5, 0.8, 0.9))
    # writing the same regions again changes nothing
    again = xmp_faces.merge(second, [xmp_faces.NewRegion("Cy", (0.6, 0.5, 0.8, 0.9))], (400, 300))
    assert again == second


def test_bad_xmp_is_a_clear_error():
    with pytest.raises(xmp_faces.XmpError, match="unreadable XMP"):
        xmp_faces.read(b"<x:xmpmeta><rdf:RDF>")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_boxes_follow_exif_orientation_as_pillow_rotates(orientation):
    stored = np.zeros((60, 90), np.uint8)
    stored[10:20, 30:50] = 255  # a marked box in the stored image
    shown = np.asarray(
        orient(Image.fromarray(stored), orientation)  # the scan's own rotation
    )
    ys, xs = np.nonzero(shown)
    h, w = shown.shape
    expected = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
    box = (30 / 90, 10 / 60, 50 / 90, 20 / 60)
    assert face_tags.stored_to_display(box, orientation) == pytest.approx(expected)
    assert face_tags.display_to_stored(expected, orientation) == pytest.approx(box)


def _jpeg(exif: bool = True) -> bytes:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    ex = Image.Exif()
    ex[0x010F] = "Camera Maker"
    ex[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=ex.tobytes() if exif else b"", quality=90)
    return buf.getvalue()


def _pixels(data: bytes) -> str:
    return hashlib.sha256(Image.open(io.BytesIO(data)).tobytes()).hexdigest()


def test_jpeg_xmp_segment_is_inserted_then_replaced_pixels_and_exif_kept():
    data = _jpeg()
    assert jpeg_xmp.read_xmp(data) is None
    p1, p2 = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>", b"<x:xmpmeta xmlns:x='a'>2</x:xmpmeta>"
    one = jpeg_xmp.with_xmp(data, p1)
    two = jpeg_xmp.with_xmp(one, p2)
    assert jpeg_xmp.read_xmp(two).endswith(b">2</x:xmpmeta>")
    for out in (one, two):
        assert _pixels(out) == _pixels(data)
        exif = Image.open(io.BytesIO(out)).getexif()
        assert exif[0x010F] == "Camera Maker" and exif[0x0112] == 6
        assert out[jpeg_xmp.image_data_offset(out) :] == data[jpeg_xmp.image_data_offset(data) :]
    assert len(two) - len(one) == len(p2) - len(p1)  # replaced in place, not added twice


def test_jpeg_xmp_refuses_non_jpeg_and_oversized_packets(tmp_path):
    with pytest.raises(jpeg_xmp.JpegError, match="not a JPEG"):
        jpeg_xmp.with_xmp(b"\x89PNG\r\n", b"x")
    with pytest.raises(jpeg_xmp.JpegError, match="does not fit"):
        jpeg_xmp.with_xmp(_jpeg(), b"x" * 70000)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(_jpeg())
    jpeg_xmp.replace_file_xmp(photo, b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    assert list(tmp_path.iterdir()) == [photo]  # no temporary file left behind
    assert jpeg_xmp.read_xmp(photo.read_bytes()) == b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"


def test_picasa_ini_with_contacts(tmp_path):
    (tmp_path / ".picasa.ini").write_text(
        "[Contacts2]\n8e62398ebda8c1a5=Ann Smith;;\n"
        "[IMG_1.jpg]\nfaces=rect64(3f845bcb59418507),8e62398ebda8c1a5;"
        "rect64(1000200030004000),ffffffffffffffff;rect64(5000500060006000),c0ffee\n"
    )
    (tmp_path / "contacts.xml").write_text(
        '<contacts><contact id="c0ffee" name="Bob Jones" display="Bob"/></contacts>'
    )
    regions = picasa.read(tmp_path / "IMG_1.jpg")
    assert [r.name for r in regions] == ["Ann Smith", "Bob Jones"]
    assert regions[0].box == pytest.approx(
        (0x3F84 / 65535, 0x5BCB / 65535, 0x5941 / 65535, 0x8507 / 65535)
    )
    assert picasa.read(tmp_path / "IMG_2.jpg") == []


def test_merge_keeps_other_metadata_with_its_prefixes():
    src = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        b' rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        b' xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmp:Rating="4"'
        b' crs:Exposure2012="+0.50"/></rdf:RDF></x:xmpmeta>'
    )
    out = xmp_faces.merge(src, [xmp_faces.NewRegion("A", (0.1, 0.1, 0.3, 0.3))], (10, 10))
    assert b'xmp:Rating="4"' in out and b'crs:Exposure2012="+0.50"' in out
