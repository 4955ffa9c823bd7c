"""Byte-level builders of odd photo files: PNG chunks, EXIF blocks, lying JPEG headers,
endless progressive scans, bit flips and truncations (for :mod:`damaged_photos`)."""

from __future__ import annotations

import io
import random
import sqlite3
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, depth: int, colour: int, rows: bytes | None) -> bytes:
    """A PNG written by hand: 16-bit RGB(A) and lying headers Pillow would not write."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    if rows is not None:
        out += png_chunk(b"IDAT", zlib.compress(rows, 6))
    return out + png_chunk(b"IEND", b"")


def png16(img: Image.Image, alpha: bool) -> bytes:
    """A 48/64-bit PNG from an 8-bit RGB image (values * 257, as a real scanner writes)."""
    a = np.asarray(img.convert("RGB"), dtype=np.uint16) * 257
    if alpha:
        a = np.concatenate([a, np.full((*a.shape[:2], 1), 65535, np.uint16)], axis=2)
    be = a.astype(">u2")
    rows = b"".join(b"\0" + be[y].tobytes() for y in range(be.shape[0]))
    return raw_png(img.width, img.height, 16, 6 if alpha else 2, rows)


def exif_block(entries: list[tuple[int, int, int, bytes]], *, next_ifd: int = 0) -> bytes:
    """A little-endian TIFF/EXIF block with one IFD; entries are (tag, type, count, value4)."""
    head = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")[:4]
    return head + ifd + struct.pack("<I", next_ifd)


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """Insert an APP1 (EXIF) segment right after SOI."""
    seg = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + seg + jpeg[2:]


def patch_sof(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame size in the first SOFn marker (a JPEG that lies about its size)."""
    data = bytearray(jpeg)
    i = 2
    while i < len(data) - 9:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        i += 2 + length
    return bytes(data)


def many_scans_jpeg(img: Image.Image, copies: int) -> bytes:
    """A progressive JPEG whose last scan is repeated many times (slow to decode)."""
    data = encode(img, "JPEG", progressive=True, quality=90)
    last_sos = data.rfind(b"\xff\xda")
    body = data[last_sos:-2]
    return data[:-2] + body * copies + b"\xff\xd9"


def flip_bits(data: bytes, rng: random.Random, n: int, start: int = 0) -> bytes:
    out = bytearray(data)
    for _ in range(n):
        i = rng.randrange(start, len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(data: bytes, rng: random.Random, lo: float = 0.05, hi: float = 0.85) -> bytes:
    return data[: max(1, int(len(data) * rng.uniform(lo, hi)))]


def sqlite_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
        return path.read_bytes()
