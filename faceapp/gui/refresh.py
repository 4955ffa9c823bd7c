"""Reading the library into the views: one read at a time, in a worker.

The window asks for a refresh after every change; a read runs in a worker
(``album.groups`` scans every face), requests that arrive meanwhile fold into
one more read, and the result selects the right group (the one an operation
just made, the current one, or the first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Slot

from faceapp.gui import workers
from faceapp.gui.groups import GroupKey, group_title
from faceapp.gui.library_errors import library_problem, report

if TYPE_CHECKING:
    from faceapp.gui.main_window import MainWindow

CONTENT_GRID, CONTENT_PHOTO, CONTENT_REVIEW = 0, 1, 2


class RefreshMixin:
    """The main window's refresh state machine (mixed into :class:`MainWindow`)."""

    def _init_refresh(self: MainWindow) -> None:
        self.current_key = None
        self._refresh_job = None
        self._refresh_again = False
        self._refresh_serial = 0
        self._pending_select = None
        self._select_first_after_refresh = False
        self._applying = False

    @Slot()
    @Slot(object)
    def refresh(self: MainWindow, changes: Any = None) -> None:
        """Re-read the library in a worker, then update the views.

        ``album.groups`` scans every face; on a large library that takes longer
        than a frame, so it never runs on the GUI thread. After an operation
        (``changes``: the engine's OpChanges) the shown group's faces are re-read
        only when the operation touched that group. Requests that arrive while a
        read is running are folded into one more full read.
        """
        lib = self.session.lib
        if lib is None or self.closed:
            return
        if self._refresh_job is not None:
            self._refresh_again = True
            return
        self._refresh_serial += 1
        serial = self._refresh_serial
        key = self._pending_select[0] if self._pending_select else self.current_key
        want_suggestions = self.content.currentIndex() == CONTENT_REVIEW
        kept = self.grid_model.face_ids() if key == self.grid_model.group_key else None
        if kept is None:
            changes = None

        if want_suggestions:
            self._measure_small_faces()

        def work(job: workers.Job) -> tuple:
            from faceapp.engine import album, photos, review

            groups = album.groups(lib)
            faces = None
            shown = key is not None and any(GroupKey.of(g) == key for g in groups)
            if shown and (changes is None or changes.touches(key.kind, key.id)):
                faces = album.group_faces(lib, key.kind, key.id)
            elif shown:
                faces = kept  # untouched: the grid stays as it is
            suggestions = None
            if want_suggestions:  # clusters first (one answer names many faces), then faces
                suggestions = [*review.cluster_reviews(lib), *review.review(lib)]
            return serial, lib, key, groups, faces, suggestions, photos.problems(lib)

        self._refresh_job = workers.run_in_background(
            work, name="refresh", on_finished=self._apply_refresh, on_failed=self._refresh_failed
        )

    def _measure_small_faces(self: MainWindow) -> None:
        """Small faces are measured at their own resolution in the session's worker;
        Review is read again when it measured any. Without a network (the weights
        banner says why) the queue keeps the plain distances."""
        lib = self.session.lib

        def measured(pairs: int) -> None:
            if pairs and not self.closed and self.session.lib is lib:
                self.refresh()

        self.session.measure_small_faces(measured)

    def select_after_refresh(self: MainWindow, key: GroupKey | None) -> None:
        """Select ``key`` once the next library read shows it (after an operation)."""
        self._pending_select = (key, self._refresh_serial) if key is not None else None

    @Slot(object)
    def _refresh_failed(self: MainWindow, exc: BaseException) -> None:
        self._refresh_job = None
        lib = self.session.lib
        if lib is not None and library_problem(exc, lib.path) is not None:
            report(self.session, "Could Not Read the Library", exc)
        else:  # e.g. a group gone between two reads: the next refresh shows the truth
            self.statusBar().showMessage(f"Could not read the library: {exc}", 8000)
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    @Slot(object)
    def _apply_refresh(self: MainWindow, result: tuple) -> None:
        self._refresh_job = None
        if self.closed:
            return
        serial, lib, key, groups, faces, suggestions, problems = result
        if lib is not self.session.lib:  # the library changed while reading
            self._refresh_again = False
            self.refresh()
            return
        self._applying = True
        try:
            self.sidebar_model.set_groups(groups)
            target = None
            pending = self._pending_select
            if pending is not None:
                if self.sidebar_model.group(pending[0]) is not None:
                    target, self._pending_select = pending[0], None
                elif serial > pending[1]:
                    self._pending_select = None  # read after the operation: it is gone
            if target is None and self._select_first_after_refresh:
                self._select_first_after_refresh = False
                row = self.sidebar_model.first_group_row()
                target = self.sidebar_model.key_at(self.sidebar_model.index(row))
            current = self.current_key
            if target is None and current is not None and self.sidebar_model.group(current):
                target = current
            if target is None:
                row = self.sidebar_model.first_group_row()
                target = self.sidebar_model.key_at(self.sidebar_model.index(row))
            if target is not None:
                self.sidebar.select_key(target)
        finally:
            self._applying = False
        if target is not None and target == key and faces is not None:
            self._show_faces(target, faces)
        else:
            self._load_group(target)
        total = sum(g.count for g in groups)
        people = sum(1 for g in groups if GroupKey.of(g).kind.is_person)
        self.counts_label.setText(
            f"{total:,} {'face' if total == 1 else 'faces'} · "
            f"{people:,} {'person' if people == 1 else 'people'}"
        )
        self.show_problem_count(problems)
        self.update_photo_marks()
        if suggestions is not None and self.content.currentIndex() == CONTENT_REVIEW:
            self.review_view.set_suggestions(suggestions)
        self._update_actions()
        self.refreshed.emit()
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    @property
    def refreshing(self: MainWindow) -> bool:
        return self._refresh_job is not None or self._refresh_again

    @Slot(object)
    def show_group(self: MainWindow, key: GroupKey | None) -> None:
        if self._applying:  # a refresh is re-selecting; it loads the faces itself
            return
        self._load_group(key)
        if self.content.currentIndex() != CONTENT_GRID:
            self.content.setCurrentIndex(CONTENT_GRID)

    def _load_group(self: MainWindow, key: GroupKey | None) -> None:
        changed = key != self.current_key
        self.current_key = key
        group = self.sidebar_model.group(key) if key is not None else None
        if group is None:
            self.grid_model.set_faces([], None)
            self.grid_page.set_tabs(False)
            search = self.sidebar_model.filter_text
            if search and self.sidebar_model.first_group_row() < 0:
                self.grid_page.set_header("Nobody found", f"No person’s name contains “{search}”")
            elif self.session.scanning:
                self.grid_page.set_header("Scanning…", "Faces appear here as they are found")
            else:
                self.grid_page.set_header("No faces yet", "Open a folder with photos of people")
            self._update_actions()
            return
        self._show_faces(key, self.session.group_faces(key), changed)

    def _show_faces(
        self: MainWindow, key: GroupKey, faces: list[int], changed: bool | None = None
    ) -> None:
        if changed is None:
            changed = key != self.grid_model.group_key
        self.current_key = key
        group = self.sidebar_model.group(key)
        if group is None:
            return
        self.grid_model.set_faces(faces, key)
        if changed:
            self.grid.scrollToTop()
        title = group_title(group)
        kind = key.kind.description
        if getattr(group, "hidden", False):
            kind += " (hidden)"
        n = group.count
        born = self.birth_date(key)
        extra = f"  ·  born {born}" if born else ""
        self.grid_page.set_header(title, f"{kind}  ·  {n:,} {'face' if n == 1 else 'faces'}{extra}")
        self.grid_page.set_tabs(key.kind.is_person, None if changed is False else 0)
        if self.grid_page.tabs.currentIndex() == self.grid_page.PHOTOS:
            self.load_photos([key.id])
        self._update_actions()
