"""Birth dates: a person cannot appear in a photo taken before they were born.

The date is the strongest constraint the user can give for free: a face in a photo
from 1985 is never suggested for, merged into or clustered with a child born in 2010,
however alike parents and children look. Dates are ISO strings, so "taken before
born" is a plain string comparison in SQL ('2005-03-01T10:00:00' < '2005-03-02').
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable

from faceapp.engine.library import Library, LibraryError
from faceapp.engine.oplog import Changes, OpChanges, commit

# (face, person) pairs that may never be joined: an unconfirmed face whose photo was
# taken before the person's birth date. Appended to the "not this person" marks.
BEFORE_BIRTH_PAIRS = (
    "SELECT f.id, pe.id FROM faces f JOIN photos p ON p.id = f.photo_id"
    " JOIN people pe ON pe.birth_date IS NOT NULL AND p.taken_at < pe.birth_date"
    " WHERE f.person_id IS NULL"
)


class BirthdayError(LibraryError):
    """A birth date that cannot be set (not a date, or a confirmed photo predates it)."""


def parse_date(text: str) -> str:
    """'2010-05-03' (or 2010-5-3) -> '2010-05-03'; anything else is a BirthdayError."""
    try:
        parts = [int(p) for p in str(text).strip().split("-")]
        return dt.date(*parts).isoformat()
    except (TypeError, ValueError):
        raise BirthdayError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def before_birth(c: sqlite3.Connection, person_id: int, face_ids: Iterable[int]) -> set[int]:
    """The faces among ``face_ids`` whose photo was taken before the person's birth."""
    ids = [int(f) for f in face_ids]
    if not ids:
        return set()
    rows = c.execute(
        "SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id"
        " JOIN people pe ON pe.id = ? AND p.taken_at < pe.birth_date"
        " WHERE f.id IN (SELECT value FROM json_each(?))",
        (int(person_id), "[" + ",".join(map(str, ids)) + "]"),
    ).fetchall()
    return {r[0] for r in rows}


def set_birth_date(lib: Library, person_id: int, date: str | None) -> OpChanges:
    """Set (or with None clear) a person's birth date; one undo step.

    Refused while a face already confirmed for the person is in a photo taken before
    that date: either the date or that label is wrong, and the user must say which.
    """
    value = None if date in (None, "") else parse_date(date)
    with lib.transaction() as c:
        row = c.execute(
            "SELECT name, birth_date FROM people WHERE id = ?", (int(person_id),)
        ).fetchone()
        if row is None:
            raise BirthdayError(f"no person {person_id}")
        if value is not None:
            early = c.execute(
                "SELECT COUNT(*), MIN(p.taken_at) FROM faces f JOIN photos p ON p.id = f.photo_id"
                " WHERE f.person_id = ? AND p.taken_at < ?",
                (int(person_id), value),
            ).fetchone()
            if early[0]:
                raise BirthdayError(
                    f"{early[0]} confirmed photo(s) of {row[0]} were taken before {value}"
                    f" (the earliest on {early[1][:10]}): check that date or those faces first"
                )
        ch = Changes(settings=[[int(person_id), "birth_date", row[1], value]])
        text = f"{row[0]}: born {value}" if value else f"{row[0]}: birth date cleared"
        return commit(c, "birthday", text, ch, person_id=int(person_id))


def birth_date(lib: Library, person_id: int) -> str | None:
    row = lib.conn.execute("SELECT birth_date FROM people WHERE id = ?", (int(person_id),))
    found = row.fetchone()
    return found[0] if found else None


def age_at(born: str | None, taken: str | None) -> int | None:
    """Completed years between a birth date and a photo's date (None if either is unknown
    or the photo is older than the person)."""
    if not born or not taken:
        return None
    b = dt.date.fromisoformat(born[:10])
    t = dt.date.fromisoformat(taken[:10])
    years = t.year - b.year - ((t.month, t.day) < (b.month, b.day))
    return years if years >= 0 else None
