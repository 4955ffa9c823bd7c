"""Scan stage 1, plan: which files of a folder need reading.

Compares the folder with the library (size and modification time), marks photos
that vanished as missing and takes back the ones that returned unchanged. What is
left to read goes to the decode stage; known photos whose content may reappear
under another name are kept so the store stage can recognise a move.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path

from faceapp.engine.face_tags import TagImport
from faceapp.engine.library import Library, LibraryError
from faceapp.engine.library_photos import PhotoState
from faceapp.engine.photo_files import discover
from faceapp.engine.scan_decode import TIME_LIMIT_PREFIX

NAME_NOT_UTF8 = "the file name is not valid UTF-8; rename the file to scan it"


@dataclass
class ScanReport:
    photos: int = 0  # photos read and stored by this scan (new or changed)
    faces: int = 0  # faces found in them
    skipped_unchanged: int = 0
    moved: int = 0
    missing: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False
    tags: TagImport = field(default_factory=TagImport)  # face tags read from the photos

    def as_dict(self) -> dict:
        return {
            "photos": self.photos,
            "faces": self.faces,
            "skipped_unchanged": self.skipped_unchanged,
            "moved": self.moved,
            "missing": self.missing,
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "seconds": round(self.seconds, 2),
            "cancelled": self.cancelled,
            "tags": self.tags.as_dict(),
        }


@dataclass
class ScanPlan:
    """What a scan has to do; the report holds what planning already settled."""

    root: Path
    model_id: int
    todo: list[tuple[str, Path]]  # (path relative to root, absolute path) to read
    on_disk: dict[str, Path]
    # content hash -> known photo whose file is gone or changed: a file with that
    # content found now may be the same photo, moved
    moved_from: dict[str, PhotoState]
    ok_before: set[int]  # photo ids present before the scan (for the missing count)
    report: ScanReport


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _storable(rel: str) -> bool:
    """SQLite text is UTF-8: a name made of other bytes (os.fsdecode surrogates) is not."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(rel: str) -> str:
    """A name that can be printed and stored in a report, undecodable bytes as \\xNN."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def plan_scan(lib: Library, root: Path, only: Container[str] | None = None) -> ScanPlan:
    """List the folder, settle what needs no reading, and return the files to read.

    ``only``: just these files (relative paths), read even when the library holds them
    as unreadable and unchanged ("Try again" on the scan problems).
    """
    root = Path(root).expanduser().resolve()
    active = lib.active_model()
    if active is None:
        raise LibraryError("the library has no model version yet (see register_base)")
    report = ScanReport()
    states = lib.photo_states()
    on_disk: dict[str, Path] = {}

    def unreadable_folder(path: Path, reason: str) -> None:
        report.errors.append((_printable(relative(path, root)), reason))

    for path in discover(root, on_error=unreadable_folder):
        rel = relative(path, root)
        if only is not None and rel not in only:
            continue
        if _storable(rel):
            on_disk[rel] = path
        else:
            report.errors.append((_printable(rel), NAME_NOT_UTF8))

    vanished = [
        rel
        for rel, s in states.items()
        if rel not in on_disk and s.status != "missing" and (only is None or rel in only)
    ]
    lib.mark_missing(vanished)
    errors_before = dict(lib.photo_errors())
    todo: list[tuple[str, Path]] = []
    changed_at_path: set[str] = set()  # a known photo's file changed: edited, or replaced
    for rel, path in on_disk.items():
        state = states.get(rel)
        try:
            stat = path.stat()
        except OSError as exc:
            report.errors.append((rel, f"cannot read: {exc}"))
            continue
        # the known photo, when its file is unchanged (same size and time)
        same_file = (
            state
            if state is not None
            and (state.size, state.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
            else None
        )
        if same_file is not None and same_file.status == "ok":
            report.skipped_unchanged += 1
        elif (
            same_file is not None
            and same_file.status == "error"
            and only is None
            and (reason := errors_before.get(rel, "")).startswith(TIME_LIMIT_PREFIX)
        ):
            report.errors.append((rel, reason))  # not worth another minutes-long wait
        elif same_file is not None and same_file.status == "missing":
            lib.move_photo(same_file.id, rel, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
            report.skipped_unchanged += 1  # came back: faces and labels were kept
        else:
            todo.append((rel, path))
            if state is not None and state.content_hash:
                changed_at_path.add(rel)
    # Known photos whose content may now be under another name: their own file is gone
    # or holds something else (a swap or a renumbering reuses names).
    moved_from = {
        s.content_hash: s
        for rel, s in states.items()
        if s.content_hash and (rel not in on_disk or rel in changed_at_path)
    }
    ok_before = {s.id for s in states.values() if s.status == "ok"}
    return ScanPlan(root, active.id, todo, on_disk, moved_from, ok_before, report)
