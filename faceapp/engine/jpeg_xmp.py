"""The XMP packet inside a JPEG: read it, and replace it without touching anything else.

A JPEG is a list of marker segments up to the first scan (SOS); the compressed
pixels follow. The XMP packet lives in an APP1 segment that starts with the XMP
namespace. Writing replaces that one segment (or inserts it after the leading
APP0/APP1 segments, where EXIF is) and copies every other byte as it was, so the
decoded pixels and the EXIF, IPTC, ICC and maker data cannot change. Packets over
one segment (64 KB; "extended XMP") are refused: a sidecar takes those.
"""

from __future__ import annotations

from pathlib import Path

from faceapp.engine.files import write_atomic
from faceapp.errors import FaceAppError

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
MAX_PACKET = 65535 - 2 - len(XMP_HEADER)
_SOI, _SOS, _EOI = 0xD8, 0xDA, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length field


class JpegError(FaceAppError):
    """A file that is not a JPEG this module can rewrite safely; a short reason."""


def _segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """[(marker, start, end)] of the header segments, and the offset of the SOS marker."""
    if data[:2] != b"\xff\xd8":
        raise JpegError("not a JPEG file")
    out: list[tuple[int, int, int]] = []
    pos = 2
    while True:
        while pos < len(data) and data[pos] == 0xFF and data[pos + 1 : pos + 2] == b"\xff":
            pos += 1  # fill bytes
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise JpegError("damaged JPEG header (no image data found)")
        marker = data[pos + 1]
        if marker in (_SOS, _EOI):
            return out, pos
        if marker in _STANDALONE:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data):
            raise JpegError("damaged JPEG header (segment runs past the end)")
        out.append((marker, pos, end))
        pos = end


def _is_xmp(data: bytes, marker: int, start: int) -> bool:
    return marker == 0xE1 and data[start + 4 : start + 4 + len(XMP_HEADER)] == XMP_HEADER


def read_xmp(data: bytes) -> bytes | None:
    """The standard XMP packet of a JPEG's bytes, or None."""
    segments, _ = _segments(data)
    for marker, start, end in segments:
        if _is_xmp(data, marker, start):
            return data[start + 4 + len(XMP_HEADER) : end]
    return None


def with_xmp(data: bytes, packet: bytes) -> bytes:
    """The JPEG ``data`` with its XMP packet replaced by (or extended with) ``packet``."""
    if len(packet) > MAX_PACKET:
        raise JpegError(f"XMP packet of {len(packet)} bytes does not fit in a JPEG segment")
    segment = b"\xff\xe1" + (2 + len(XMP_HEADER) + len(packet)).to_bytes(2, "big")
    segment += XMP_HEADER + packet
    segments, _ = _segments(data)
    for marker, start, end in segments:
        if _is_xmp(data, marker, start):
            return data[:start] + segment + data[end:]
    insert = 2
    for marker, _start, end in segments:  # after JFIF/EXIF, before the rest
        if marker not in (0xE0, 0xE1):
            break
        insert = end
    return data[:insert] + segment + data[insert:]


def image_data_offset(data: bytes) -> int:
    """Where the first scan starts: every byte from here on is the compressed image."""
    return _segments(data)[1]


def wrap_packet(xmp: bytes) -> bytes:
    """An XMP packet with the xpacket wrapper and padding that lets editors grow it in place."""
    head = b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    tail = b'\n<?xpacket end="w"?>'
    padding = b" " * min(2048, max(0, MAX_PACKET - len(head) - len(xmp) - len(tail)))
    return head + xmp + padding + tail


def temp_path(path: Path) -> Path:
    """Where a new version of ``path`` is written before it replaces it (hidden: no scan)."""
    return path.with_name(f".{path.name}.faceapp-tmp")


def replace_file_xmp(path: Path, packet: bytes) -> None:
    """Write ``packet`` into the JPEG at ``path``: checked, written aside, read back, replaced.

    A failure or a kill at any moment leaves either the old file or the new one.
    """
    path = Path(path)
    data = path.read_bytes()
    new = with_xmp(data, packet)
    old_start = image_data_offset(data)
    if (
        read_xmp(new) != packet
        or new[image_data_offset(new) :] != data[old_start:]
        or _others(new) != _others(data)
    ):
        raise JpegError("the rewritten file would not keep the photo's other data")
    write_atomic(path, new, temp=temp_path(path), verify=True, keep_mode=True)


def _others(data: bytes) -> list[bytes]:
    """Every header segment but the XMP one, in order."""
    segments, _ = _segments(data)
    return [data[s:e] for m, s, e in segments if not _is_xmp(data, m, s)]
