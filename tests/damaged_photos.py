"""Damaged and odd photo files, made from real LFW photos, and what a scan must do with each.

The corpus: truncated and bit-flipped JPEG/PNG/WebP/TIFF, wrong extensions, empty and
tiny files, huge declared dimensions, broken EXIF, 16-bit and palette PNGs, animated
GIF/WebP, multi-page TIFF, odd modes (CMYK, float, 1-bit), odd file names (non-UTF-8
bytes, newlines), unreadable files (chmod 000), and things that are not files at all (a
FIFO, a dangling link, a folder called ``x.jpg``), each with what a scan must do with it
(:mod:`scan_verdict` checks that). tests/engine/test_scan_decode.py
scans ~150 of them; bench/fuzz_scan.py 1,000+.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from photo_bytes import (
    encode,
    exif_block,
    flip_bits,
    many_scans_jpeg,
    patch_sof,
    png16,
    png_chunk,
    raw_png,
    sqlite_bytes,
    truncate,
    with_app1,
)
from PIL import Image


@dataclass
class CorpusFile:
    """One generated file: its path relative to the scanned folder and what to expect.

    ``expect`` is ``good`` (must be stored as a photo), ``bad`` (must be reported with
    a reason), ``any`` (either, but never silently lost) or ``ignored`` (not a regular
    file or not a photo name: the scan must pass it by without hanging).
    """

    rel: str
    kind: str
    expect: str
    raw_name: bytes | None = None  # a name that is not valid UTF-8, as bytes


# --------------------------------------------------------------------------- the corpus

# kind -> (weight, maker). A maker gets (rng, source image, source JPEG bytes) and
# returns (extension, bytes, expect).
Maker = Callable[[random.Random, Image.Image, bytes], tuple[str, bytes, str]]


def _gif_frames(img: Image.Image, rng: random.Random) -> list[Image.Image]:
    return [img.rotate(rng.uniform(-20, 20)).convert("P", palette=Image.Palette.ADAPTIVE)] + [
        img.rotate(a).convert("P", palette=Image.Palette.ADAPTIVE) for a in (5, -5)
    ]


def _makers() -> dict[str, tuple[int, Maker]]:
    lossy = {
        "jpeg": lambda img: encode(img, "JPEG", quality=90),
        "png": lambda img: encode(img, "PNG"),
        "webp": lambda img: encode(img, "WEBP", quality=80),
        "tiff": lambda img: encode(img, "TIFF", compression="tiff_adobe_deflate"),
    }
    ext = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif"}
    m: dict[str, tuple[int, Maker]] = {}
    for fmt, enc in lossy.items():
        m[f"truncated-{fmt}"] = (
            60,
            lambda r, img, jpg, enc=enc, e=ext[fmt]: (e, truncate(enc(img), r), "bad"),
        )
        m[f"bitflip-{fmt}"] = (
            60,
            lambda r, img, jpg, enc=enc, e=ext[fmt]: (
                e,
                flip_bits(enc(img), r, r.choice([1, 2, 8, 64])),
                "any",
            ),
        )
        m[f"zeroed-block-{fmt}"] = (
            15,
            lambda r, img, jpg, enc=enc, e=ext[fmt]: (e, _zero_block(enc(img), r), "any"),
        )
    m.update(
        {
            "wrong-ext-png-as-jpg": (15, lambda r, img, jpg: (".jpg", encode(img, "PNG"), "good")),
            "wrong-ext-jpg-as-png": (15, lambda r, img, jpg: (".png", jpg, "good")),
            "wrong-ext-webp-as-jpeg": (
                10,
                lambda r, img, jpg: (".jpeg", encode(img, "WEBP"), "good"),
            ),
            "wrong-ext-tiff-as-webp": (
                10,
                lambda r, img, jpg: (".webp", encode(img, "TIFF"), "good"),
            ),
            "wrong-ext-bmp-as-tif": (10, lambda r, img, jpg: (".tif", encode(img, "BMP"), "good")),
            "gif-as-jpg": (10, lambda r, img, jpg: (".jpg", _animated_gif(img, r), "any")),
            "other-format-as-jpg": (20, _other_format),
            "text-as-jpg": (
                15,
                lambda r, img, jpg: (
                    r.choice([".jpg", ".png", ".JPG"]),
                    ("not a photo\n" * r.randint(1, 500)).encode(),
                    "bad",
                ),
            ),
            "html-as-jpg": (
                10,
                lambda r, img, jpg: (
                    ".jpg",
                    b"<!doctype html><html><body>404</body></html>",
                    "bad",
                ),
            ),
            "random-bytes": (
                20,
                lambda r, img, jpg: (
                    r.choice(list(ext.values())),
                    r.randbytes(r.randint(1, 50_000)),
                    "bad",
                ),
            ),
            "zip-pdf-elf-sqlite-as-photo": (15, _foreign),
            "empty": (20, lambda r, img, jpg: (r.choice(list(ext.values())), b"", "bad")),
            "tiny-header": (20, _tiny_header),
            "huge-declared-png": (10, _huge_png),
            "huge-declared-jpeg": (
                10,
                lambda r, img, jpg: (".jpg", patch_sof(jpg, 65000, 65000), "bad"),
            ),
            "huge-declared-tiff": (5, _huge_tiff),
            "huge-declared-bmp": (5, _huge_bmp),
            "huge-declared-gif-as-jpg": (5, _huge_gif),
            "lying-jpeg-size": (10, _lying_jpeg),
            "broken-exif": (40, _broken_exif),
            "exif-orientation": (20, _exif_orientation),
            "png-16bit-rgb": (15, lambda r, img, jpg: (".png", png16(img, alpha=False), "good")),
            "png-16bit-rgba": (10, lambda r, img, jpg: (".png", png16(img, alpha=True), "good")),
            "png-16bit-grey": (10, _png16_grey),
            "png-palette": (25, _png_palette),
            "png-grey-alpha": (
                5,
                lambda r, img, jpg: (".png", encode(img.convert("LA"), "PNG"), "good"),
            ),
            "png-many-idat": (5, _png_many_idat),
            "png-text-bomb": (5, _png_text_bomb),
            "animated-webp": (20, _animated_webp),
            "multipage-tiff": (20, _multipage_tiff),
            "tiff-modes": (25, _tiff_modes),
            "jpeg-variants": (30, _jpeg_variants),
            "bmp-variants": (15, _bmp_variants),
            "webp-variants": (15, _webp_variants),
            "odd-sizes": (15, _odd_sizes),
            "jpeg-many-scans": (3, lambda r, img, jpg: (".jpg", many_scans_jpeg(img, 3000), "bad")),
        }
    )
    return m


def _zero_block(data: bytes, r: random.Random) -> bytes:
    out = bytearray(data)
    start = r.randrange(len(out))
    n = r.randint(1, max(1, len(out) // 10))
    out[start : start + n] = bytes(len(out[start : start + n]))
    return bytes(out)


def _animated_gif(img: Image.Image, r: random.Random) -> bytes:
    frames = _gif_frames(img, r)
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _other_format(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    fmt = r.choice(["ICO", "TGA", "PCX", "PPM", "JPEG2000", "EPS", "SGI", "QOI", "AVIF"])
    try:
        data = encode(img, fmt)
    except Exception:
        data = encode(img, "PPM")
    return r.choice([".jpg", ".png"]), data, "any"


def _foreign(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    choice = r.randrange(5)
    if choice == 0:
        buf = io.BytesIO()
        import zipfile

        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("photo.jpg", jpg)
        data = buf.getvalue()
    elif choice == 1:
        data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    elif choice == 2:
        data = b"\x7fELF\x02\x01\x01" + bytes(57) + r.randbytes(2000)
    elif choice == 3:
        data = sqlite_bytes()
    else:
        data = b"\x00\x00\x00\x18ftypmp42" + r.randbytes(4000)  # a video, named as a photo
    return r.choice([".jpg", ".png", ".tiff"]), data, "bad"


def _tiny_header(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    heads = [
        (".jpg", b"\xff\xd8"),
        (".jpg", b"\xff\xd8\xff\xe0"),
        (".png", b"\x89PNG\r\n\x1a\n"),
        (".webp", b"RIFF\x00\x00\x00\x00WEBP"),
        (".tif", b"II*\x00"),
        (".tif", b"MM\x00*\x00\x00\x00\x08"),
        (".bmp", b"BM"),
        (".jpg", b"\xff"),
    ]
    e, data = r.choice(heads)
    return e, data, "bad"


def _huge_png(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    w, h = r.choice(
        [(30000, 30000), (100000, 100000), (2**31 - 1, 1), (1, 2**31 - 1), (20000, 20000)]
    )
    rows = None if r.random() < 0.5 else zlib.compress(b"\0" * 1000)
    return ".png", raw_png(w, h, 8, 2, rows), "bad"


def _huge_tiff(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    w = h = r.choice([40000, 65535, 1_000_000])
    entries = [
        (256, 4, 1, struct.pack("<I", w)),
        (257, 4, 1, struct.pack("<I", h)),
        (258, 3, 1, struct.pack("<H", 8)),
        (259, 3, 1, struct.pack("<H", 1)),
        (262, 3, 1, struct.pack("<H", 1)),
        (273, 4, 1, struct.pack("<I", 8)),
        (277, 3, 1, struct.pack("<H", 1)),
        (278, 4, 1, struct.pack("<I", h)),
        (279, 4, 1, struct.pack("<I", w * h & 0xFFFFFFFF)),
    ]
    return ".tif", exif_block(entries), "bad"


def _huge_bmp(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    w, h = r.choice([(50000, 50000), (2**30, 2), (30000, -30000)])
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    head = b"BM" + struct.pack("<IHHI", 14 + len(info) + 16, 0, 0, 14 + len(info))
    return ".bmp", head + info + bytes(16), "bad"


def _huge_gif(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    data = bytearray(encode(img.convert("P"), "GIF"))
    struct.pack_into("<HH", data, 6, 65535, 65535)  # logical screen
    i = data.find(b"\x2c")  # image descriptor
    if i > 0:
        struct.pack_into("<HH", data, i + 5, 65535, 65535)
    return ".jpg", bytes(data), "bad"


def _lying_jpeg(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    """SOF says a bigger (but allowed) size than the data holds: the decode runs out."""
    w, h = r.choice([(4000, 3000), (12000, 9000), (251, 251), (300, 250)])
    return ".jpg", patch_sof(jpg, w, h), "any"


def _broken_exif(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    variant = r.randrange(8)
    if variant == 0:  # not EXIF at all behind the header
        payload = b"Exif\0\0" + r.randbytes(r.randint(0, 200))
    elif variant == 1:  # orientation outside 1..8
        value = r.choice([0, 9, 255, 65535])
        payload = b"Exif\0\0" + exif_block([(0x0112, 3, 1, struct.pack("<H", value))])
    elif variant == 2:  # orientation with the wrong type and a count pointing far away
        payload = b"Exif\0\0" + exif_block([(0x0112, 4, 1000, struct.pack("<I", 0x7FFFFFF0))])
    elif variant == 3:  # IFD pointing at itself (a loop)
        payload = b"Exif\0\0" + exif_block([(0x0112, 3, 1, b"\x06\0")], next_ifd=8)
    elif variant == 4:  # IFD offset beyond the block
        payload = b"Exif\0\0II*\x00" + struct.pack("<I", 0xFFFFFF00)
    elif variant == 5:  # truncated EXIF
        payload = (b"Exif\0\0" + exif_block([(0x0112, 3, 1, b"\x06\0")] * 10))[:30]
    elif variant == 6:  # huge entry count
        payload = b"Exif\0\0II*\x00\x08\x00\x00\x00\xff\xff" + r.randbytes(64)
    else:  # an EXIF sub-IFD pointer into nowhere
        payload = b"Exif\0\0" + exif_block([(0x8769, 4, 1, struct.pack("<I", 0xFFFF0000))])
    return ".jpg", with_app1(jpg, payload), "good"


def _exif_orientation(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    value = r.randint(1, 8)
    payload = b"Exif\0\0" + exif_block([(0x0112, 3, 1, struct.pack("<H", value))])
    return ".jpg", with_app1(jpg, payload), "good"


def _png16_grey(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    a = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    return ".png", encode(Image.fromarray(a.astype(np.uint16)), "PNG"), "good"


def _png_palette(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    bits = r.choice([1, 2, 4, 8])
    p = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=2**bits)
    kw: dict = {"bits": bits} if bits < 8 else {}
    if r.random() < 0.4:
        kw["transparency"] = 0
    return ".png", encode(p, "PNG", **kw), "good"


def _png_many_idat(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    a = np.asarray(img.convert("RGB"))
    rows = b"".join(b"\0" + a[y].tobytes() for y in range(a.shape[0]))
    z = zlib.compress(rows)
    ihdr = struct.pack(">IIBBBBB", img.width, img.height, 8, 2, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for i in range(0, len(z), 7):
        out += png_chunk(b"IDAT", z[i : i + 7])
    return ".png", out + png_chunk(b"IEND", b""), "good"


def _png_text_bomb(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    data = encode(img, "PNG")
    bomb = png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 50_000_000, 9))
    return ".png", data[:33] + bomb + data[33:], "any"


def _animated_webp(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    frames = [img, img.rotate(10), img.rotate(-10)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)
    return ".webp", data, "good"


def _multipage_tiff(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    comp = r.choice(["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"])
    pages = [img, img.convert("L").convert("RGB"), img.rotate(90)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression=comp)
    return r.choice([".tif", ".tiff"]), data, "good"


def _tiff_modes(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    mode = r.choice(["CMYK", "F", "I;16", "1", "L", "RGBA", "I"])
    if mode == "F":
        conv = Image.fromarray(np.asarray(img.convert("L"), np.float32) / 255.0)
    elif mode == "I;16":
        conv = Image.fromarray(np.asarray(img.convert("L"), np.uint16) * 257)
    elif mode == "I":
        conv = img.convert("I")
    else:
        conv = img.convert(mode)
    return ".tif", encode(conv, "TIFF"), "good"


def _jpeg_variants(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    v = r.randrange(6)
    if v == 0:
        data = encode(img.convert("L"), "JPEG")
    elif v == 1:
        data = encode(img.convert("CMYK"), "JPEG")
    elif v == 2:
        data = encode(img, "JPEG", progressive=True)
    elif v == 3:
        data = encode(img, "JPEG", subsampling=0, quality=100)
    elif v == 4:
        data = encode(img, "JPEG", restart_marker_blocks=1)
    else:
        data = jpg + r.randbytes(r.randint(1, 5000))  # trailing garbage after EOI
    return r.choice([".jpg", ".jpeg", ".JPG", ".JPEG"]), data, "good"


def _bmp_variants(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    mode = r.choice(["1", "L", "P", "RGB", "RGBA"])
    return ".bmp", encode(img.convert(mode), "BMP"), "good"


def _webp_variants(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    v = r.randrange(3)
    if v == 0:
        data = encode(img, "WEBP", lossless=True)
    elif v == 1:
        data = encode(img.convert("RGBA"), "WEBP", quality=50)
    else:
        data = encode(img, "WEBP", quality=5)
    return ".webp", data, "good"


def _odd_sizes(r: random.Random, img: Image.Image, jpg: bytes) -> tuple[str, bytes, str]:
    w, h = r.choice([(1, 1), (1, 500), (3000, 1), (2, 2), (16, 16), (9000, 6), (12, 4000)])
    small = img.resize((w, h))
    fmt, e = r.choice([("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"), ("TIFF", ".tif")])
    if fmt == "WEBP" and max(w, h) > 16383:
        fmt, e = "PNG", ".png"
    return e, encode(small, fmt), "good"


def _big_valid(r: random.Random, img: Image.Image) -> tuple[str, bytes, str]:
    """A large real photo (40-60 MP): faces pasted on a flat canvas, PNG or JPEG."""
    w, h = r.choice([(8000, 6000), (9000, 6000), (6000, 8000)])
    canvas = Image.new("RGB", (w, h), tuple(r.randrange(256) for _ in range(3)))
    big = img.resize((1000, 1000))
    for _ in range(3):
        canvas.paste(big, (r.randrange(w - 1000), r.randrange(h - 1000)))
    if r.random() < 0.5:
        return ".png", encode(canvas, "PNG", compress_level=1), "good"
    return ".jpg", encode(canvas, "JPEG", quality=85), "good"


ODD_NAMES = [
    "spaces in name.jpg",
    "ünïcødé-名前.jpg",
    "emoji-😀.png",
    "-leading-dash.jpg",
    "percent%20and#hash.jpg",
    "new\nline.jpg",
    "semi;colon'quote\".jpg",
    "x" * 240 + ".jpg",
]


def make_corpus(
    dest: Path,
    sources: list[Path],
    count: int,
    seed: int = 0,
    *,
    big: int = 2,
    unreadable: int = 5,
    specials: bool = True,
) -> list[CorpusFile]:
    """Write ``count`` fuzz files (plus ``big`` large photos) under ``dest/fuzz``.

    Each file is made from one of ``sources`` (LFW JPEGs), so the good ones hold a face.
    """
    rng = random.Random(seed)
    makers = _makers()
    kinds = list(makers)
    weights = [makers[k][0] for k in kinds]
    out_dir = dest / "fuzz"
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[CorpusFile] = []
    images: dict[Path, tuple[Image.Image, bytes]] = {}

    def source() -> tuple[Image.Image, bytes]:
        path = rng.choice(sources)
        if path not in images:
            data = path.read_bytes()
            images[path] = (Image.open(io.BytesIO(data)).convert("RGB"), data)
        return images[path]

    def write(rel: str, data: bytes, kind: str, expect: str) -> None:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
        files.append(CorpusFile(rel, kind, expect))

    # every kind at least once, the rest by weight
    order = kinds + rng.choices(kinds, weights=weights, k=max(0, count - len(kinds)))
    for i, kind in enumerate(order[:count]):
        img, jpg = source()
        ext, data, expect = makers[kind][1](rng, img, jpg)
        write(f"fuzz/{i:04d}-{kind}{ext}", data, kind, expect)
    for j in range(big):
        ext, data, expect = _big_valid(rng, source()[0])
        write(f"fuzz/big-{j}{ext}", data, "big-valid", expect)
    for j in range(unreadable):
        rel = f"fuzz/unreadable-{j}.jpg"
        write(rel, source()[1], "unreadable", "bad")
        (dest / rel).chmod(0)
    if specials:
        for name in ODD_NAMES:
            write(f"fuzz/names/{name}", source()[1], "odd-name", "good")
        raw = b"fuzz/names/latin1-caf\xe9.jpg"  # not UTF-8: made on an old camera or zip
        with open(os.fsencode(dest) + b"/" + raw, "wb") as fh:
            fh.write(source()[1])
        # reported under a printable name (the library stores UTF-8 text only)
        printable = raw.decode("utf-8", "backslashreplace")
        files.append(CorpusFile(printable, "non-utf8-name", "bad", raw_name=raw))
        os.mkfifo(out_dir / "fifo.jpg")
        files.append(CorpusFile("fuzz/fifo.jpg", "fifo", "ignored"))
        (out_dir / "dangling.jpg").symlink_to(out_dir / "nothing-here.jpg")
        files.append(CorpusFile("fuzz/dangling.jpg", "dangling-link", "ignored"))
        (out_dir / "folder.jpg").mkdir()
        files.append(CorpusFile("fuzz/folder.jpg", "folder-named-jpg", "ignored"))
        (out_dir / "loop").symlink_to(dest, target_is_directory=True)
    return files


def add_good_photos(dest: Path, sources: list[Path]) -> list[str]:
    """Real LFW photos, copied under ``dest/good/<Name>/``; returns their relative paths."""
    rels = []
    for src in sources:
        rel = f"good/{src.parent.name}/{src.name}"
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
        rels.append(rel)
    return rels
