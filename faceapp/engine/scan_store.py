"""Scan stage 4, store: the one writer that puts analyzed photos into the library.

Each photo is stored in its own transaction: a cancelled or killed scan keeps what
it finished and the next scan resumes with the files not yet stored. A file whose
content the library already knows under another name is recorded as a move (its
faces and labels kept) instead of being stored again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from faceapp.engine.face_tags import TagImporter
from faceapp.engine.library import Library
from faceapp.engine.library_photos import PhotoState
from faceapp.engine.scan_analyze import PhotoResult
from faceapp.engine.scan_decode import Decoded, file_hash
from faceapp.engine.scan_plan import ScanPlan, ScanReport


@dataclass(frozen=True)
class ScanProgress:
    done: int
    total: int
    faces: int
    current: str
    elapsed: float
    eta: float | None


class ScanStore:
    """Writes a plan's results and keeps its report and progress."""

    def __init__(
        self,
        lib: Library,
        plan: ScanPlan,
        *,
        progress: Callable[[ScanProgress], None] | None = None,
        started: float | None = None,
        tags: TagImporter | None = None,
    ) -> None:
        self.lib = lib
        self.tags = tags  # reads the face tags of each stored photo
        self.plan = plan
        self.report = plan.report
        self._progress = progress
        self._t0 = time.perf_counter() if started is None else started
        self._found_again: set[int] = set()
        self.done = 0

    def emit(self, current: str) -> None:
        if self._progress is None:
            return
        elapsed = time.perf_counter() - self._t0
        total = len(self.plan.todo)
        eta = elapsed / self.done * (total - self.done) if self.done else None
        self._progress(ScanProgress(self.done, total, self.report.faces, current, elapsed, eta))

    def _moved_here(self, previous: PhotoState, rel: str) -> bool:
        """Is this file ``previous`` itself, rather than a copy of it?"""
        own = self.plan.on_disk.get(previous.path)
        if previous.path == rel or own is None:
            return True  # the same file (touched) or the original is gone
        try:
            return file_hash(own) != previous.content_hash  # the original was replaced
        except OSError:
            return True

    def take_move(self, rel: str, size: int, mtime_ns: int, content_hash: str) -> bool:
        """Record the file as a known photo that moved here, if it is one."""
        previous = self.plan.moved_from.get(content_hash)
        if (
            previous is None
            or previous.id in self._found_again
            or not self._moved_here(previous, rel)
        ):
            return False
        self._found_again.add(previous.id)
        self.lib.move_photo(previous.id, rel, size=size, mtime_ns=mtime_ns)
        if previous.path == rel:
            self.report.skipped_unchanged += 1  # touched, same content: faces kept
        else:
            self.report.moved += 1
        self.done += 1
        self.emit(rel)
        return True

    def not_stored(self, batch: list[Decoded]) -> list[Decoded]:
        """The batch less the files a second scan of the library stored meanwhile."""
        fresh = []
        for item in batch:
            if item.image is not None and self.lib.is_stored(item.rel, item.size, item.mtime_ns):
                self.report.skipped_unchanged += 1
                self.done += 1
            else:
                fresh.append(item)
        return fresh

    def store(self, results: list[PhotoResult]) -> None:
        """Store a batch: photos with their faces, then the files that failed."""
        if not results:
            return
        for r in results:
            if r.error is not None:
                continue
            photo_id = self.lib.store_photo(
                r.rel,
                size=r.size,
                mtime_ns=r.mtime_ns,
                width=r.width,
                height=r.height,
                content_hash=r.content_hash,
                model_id=self.plan.model_id,
                taken_at=r.taken_at,
                faces=r.faces,
            )
            if self.tags is not None:
                self.tags.photo_stored(r.rel, photo_id)
            self.report.photos += 1
            self.report.faces += len(r.faces)
        for r in results:
            if r.error is not None and not self.plan.on_disk[r.rel].exists():
                continue  # deleted during the scan: gone, not unreadable
            if r.error is not None:
                self.lib.store_photo_error(r.rel, size=r.size, mtime_ns=r.mtime_ns, reason=r.error)
                self.report.errors.append((r.rel, r.error))
        self.done += len(results)
        self.emit(results[-1].rel)

    def finish(self) -> ScanReport:
        """The report, with the photos this scan found missing."""
        ok_before = self.plan.ok_before
        self.report.missing = sum(
            1
            for s in self.lib.photo_states().values()
            if s.status == "missing" and s.id in ok_before
        )
        self.report.seconds = time.perf_counter() - self._t0
        return self.report
