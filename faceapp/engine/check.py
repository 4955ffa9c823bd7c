"""Is a library file damaged? A quick check on every open and a full check on demand.

The quick check must stay cheap on a million-face library (several GB), so it never
reads the whole file: the SQLite header, the file size against the page size and
page count, the last page of the file, the schema, and the first and last entry of
every table and index (a seek down each b-tree's edges). That finds a truncated or
foreign file, a wrong header and damage at the end of the file, where appends land.
Damage in the middle of the file is found by the full check (``PRAGMA
integrity_check``), by the backups (copying reads every row) and by SQLite itself
when the damaged page is read; each reports it as :class:`LibraryDamaged`.
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

from faceapp.engine.storage import LibraryDamaged, LibraryError

MAGIC = b"SQLite format 3\x00"
REQUIRED_TABLES = ("meta", "photos", "people", "clusters", "faces", "models", "embeddings", "oplog")
BTREE_PAGE_TYPES = (2, 5, 10, 13)  # interior index, interior table, leaf index, leaf table
MAX_FREELIST_TRUNKS = 100_000  # a loop in a damaged freelist must not hang the check


def wal_has_frames(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 32  # a header alone holds no pages
    except OSError:
        return False


def read_header(path: Path) -> tuple[int, int]:
    """(page size, page count) from a library file's header; raises LibraryError if it is none.

    An empty file (a failed copy or sync leaves one) and a file of another kind are
    errors that say so, never a new library.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        raise LibraryError(f"no library at {path}") from None
    if not head:
        raise LibraryError(
            f"{path} is empty (0 bytes), not a library: a failed copy or sync leaves such a"
            f" file. Restore it with `faceapp restore --library {path}` or from your own copy"
        )
    if not head.startswith(MAGIC):
        raise LibraryError(f"{path} is not a Face Album library (not an SQLite database)")
    if len(head) < 100:
        raise LibraryDamaged(path, "the file is shorter than its header")
    (page_size,) = struct.unpack(">H", head[16:18])
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise LibraryDamaged(path, f"invalid page size {page_size} in the header")
    (pages,) = struct.unpack(">I", head[28:32])
    return page_size, pages


def _freelist_leaves(f, page_size: int, head: bytes, pages: int) -> set[int] | None:
    """Page numbers on the freelist (None when the freelist itself looks damaged)."""
    (trunk,) = struct.unpack(">I", head[32:36])
    leaves: set[int] = set()
    for _ in range(MAX_FREELIST_TRUNKS):
        if trunk == 0:
            return leaves
        if trunk > pages:
            return None
        leaves.add(trunk)
        f.seek((trunk - 1) * page_size)
        data = f.read(page_size)
        nxt, count = struct.unpack(">II", data[:8])
        if count > (page_size - 8) // 4:
            return None
        leaves.update(struct.unpack(f">{count}I", data[8 : 8 + 4 * count]))
        trunk = nxt
    return None


def _plausible_page(data: bytes, pages: int, page_size: int, first: bool) -> bool:
    """Could ``data`` be a b-tree or overflow page of a database of ``pages`` pages?"""
    offset = 100 if first else 0
    kind = data[offset]
    if kind in BTREE_PAGE_TYPES:
        freeblock, cells, content = struct.unpack(">HHH", data[offset + 1 : offset + 7])
        header = offset + (12 if kind in (2, 5) else 8)
        content = 65536 if content == 0 else content
        return (
            freeblock < page_size
            and header + 2 * cells <= page_size
            and (cells == 0 or header + 2 * cells <= content <= page_size)
        )
    (next_page,) = struct.unpack(">I", data[:4])  # an overflow page: the next one or 0
    return not first and next_page <= pages


def check_file(path: Path) -> None:
    """The raw-file part of the quick check (no SQLite involved, so no lock is needed)."""
    page_size, pages = read_header(path)
    size = path.stat().st_size
    if wal_has_frames(path):
        return  # the file is only half the truth until the journal is folded back in
    if size % page_size:
        raise LibraryDamaged(path, f"its size is not a whole number of {page_size}-byte pages")
    with open(path, "rb") as f:
        head = f.read(100)
        (counter,) = struct.unpack(">I", head[24:28])
        (valid_for,) = struct.unpack(">I", head[92:96])
        if counter != valid_for or pages == 0:
            pages = size // page_size  # an old writer did not keep the count: trust the size
        if pages * page_size > size:
            raise LibraryDamaged(
                path, f"the file is cut short ({size} bytes; its header says {pages} pages)"
            )
        free = _freelist_leaves(f, page_size, head, pages)
        if free is None:
            raise LibraryDamaged(path, "its list of free pages is damaged")
        if pages in free:
            return
        f.seek((pages - 1) * page_size)
        last = f.read(page_size)
    if not _plausible_page(last, pages, page_size, first=pages == 1):
        raise LibraryDamaged(path, f"its last page ({pages}) is not a valid page")


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """The SQLite part of the quick check: the schema, then the edges of every b-tree."""
    rows = conn.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
    tables = {name for kind, name, _ in rows if kind == "table"}
    if "meta" not in tables:
        raise LibraryError(f"{path}: not a Face Album library")
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise LibraryDamaged(path, f"tables missing: {', '.join(missing)}")
    for kind, name, table in rows:
        if name.startswith("sqlite_") and kind == "table":
            continue
        if kind == "table":
            cols = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            pk = ", ".join(f'"{c[1]}"' for c in sorted(cols, key=lambda c: c[5]) if c[5])
            order = pk if _without_rowid(conn, name) else "rowid"
            source = f'"{name}"'
        elif kind == "index":
            cols = conn.execute(f'PRAGMA index_info("{name}")').fetchall()
            if not cols or cols[0][2] is None:
                continue  # an index on an expression
            order = f'"{cols[0][2]}"'
            source = f'"{table}" INDEXED BY "{name}"'
        else:
            continue
        for direction in ("ASC", "DESC"):
            try:
                conn.execute(f"SELECT {order} FROM {source} ORDER BY {order} {direction} LIMIT 1")
            except sqlite3.OperationalError as exc:
                if "no query solution" not in str(exc):  # a partial index: not usable alone
                    raise
                break


def _without_rowid(conn: sqlite3.Connection, table: str) -> bool:
    try:
        conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
    except sqlite3.OperationalError:
        return True
    return False


def full_check(conn: sqlite3.Connection) -> list[str]:
    """Every problem SQLite finds in the file (empty when it is sound). Reads all of it."""
    problems = [r[0] for r in conn.execute("PRAGMA integrity_check(100)") if r[0] != "ok"]
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        problems.append(f"row {rowid} of {table} refers to a missing row of {parent}")
        if len(problems) >= 100:
            break
    return problems
