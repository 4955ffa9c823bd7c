"""What a scan did with each file of a damaged corpus, against what it should have done.

:func:`check` compares the library's photo rows and the scan's report with each
file's expectation (:class:`damaged_photos.CorpusFile`); as root, chmod 000 holds only
in a child without the capabilities that bypass file permissions
(:func:`unprivileged_prefix`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from damaged_photos import CorpusFile

# --------------------------------------------------------------------------- checking


@dataclass
class Verdict:
    files_tried: int
    good_expected: int
    good_processed: int
    bad_expected: int
    bad_reported: int
    any_files: int
    any_stored: int
    lost: list[str]  # neither stored nor reported
    wrong: list[dict]  # a good file reported, or a bad file stored
    unclear_reasons: list[dict]
    reasons: dict[str, int]
    timeouts: int


def check(
    corpus: list[CorpusFile], good: list[str], photos: dict[str, tuple[str, str | None]], errors
) -> Verdict:
    """Compare the library (path -> (status, error)) and the report with the expectations."""
    reported = {p: r for p, r in errors}
    lost, wrong, unclear = [], [], []
    reasons: Counter[str] = Counter()
    counts = Counter()
    items = [(c.rel, c.kind, c.expect) for c in corpus] + [(g, "lfw", "good") for g in good]
    for rel, kind, expect in items:
        if expect == "ignored":
            if rel in photos:
                wrong.append({"path": rel, "kind": kind, "problem": "not a file, yet stored"})
            continue
        status, error = photos.get(rel, (None, None))
        stored_ok = status == "ok"
        failed = status == "error" or rel in reported
        reason = reported.get(rel) or error
        counts[expect] += 1
        if stored_ok:
            counts[f"{expect}-ok"] += 1
        if failed:
            counts[f"{expect}-reported"] += 1
            reasons[_reason_class(reason or "")] += 1
            if not reason or len(reason) > 200 or "Traceback" in reason or "\n" in reason:
                unclear.append({"path": rel, "kind": kind, "reason": reason})
        if not stored_ok and not failed:
            lost.append(rel)
        elif expect == "good" and not stored_ok:
            wrong.append({"path": rel, "kind": kind, "problem": f"good file reported: {reason}"})
        elif expect == "bad" and stored_ok:
            wrong.append({"path": rel, "kind": kind, "problem": "bad file stored as a photo"})
    return Verdict(
        files_tried=sum(counts[k] for k in ("good", "bad", "any")),
        good_expected=counts["good"],
        good_processed=counts["good-ok"],
        bad_expected=counts["bad"],
        bad_reported=counts["bad-reported"],
        any_files=counts["any"],
        any_stored=counts["any-ok"],
        lost=lost,
        wrong=wrong,
        unclear_reasons=unclear,
        reasons=dict(reasons.most_common()),
        timeouts=sum(n for r, n in reasons.items() if "longer than" in r),
    )


def _reason_class(reason: str) -> str:
    """Group reasons for the table: drop the details in parentheses."""
    return reason.split(" (")[0].split(":")[0].strip() or "(empty)"


def library_photos(library: Path) -> dict[str, tuple[str, str | None]]:
    conn = sqlite3.connect(f"file:{library}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT path, status, error FROM photos").fetchall()
    finally:
        conn.close()
    return {p: (s, e) for p, s, e in rows}


# --------------------------------------------------------------------------- running


def unprivileged_prefix() -> list[str]:
    """As root, drop the capabilities that bypass file permissions (chmod 000 then holds)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def permissions_enforced() -> bool:
    return os.geteuid() != 0 or bool(unprivileged_prefix())
