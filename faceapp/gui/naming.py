"""Naming people: name or rename a group, name any faces, merge, move, reject, hide.

Every change is one engine operation run through the session (so it is
undoable); the dialogs only collect a name. Any face or selection of faces can
become a new person or join one named before, from every place faces are shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Slot

from faceapp.gui.dialogs.name import NameDialog
from faceapp.gui.dialogs.question import ask_yes_no
from faceapp.gui.groups import GroupKey, GroupKind
from faceapp.gui.outliers import OutlierCheck
from faceapp.gui.refresh import CONTENT_GRID, CONTENT_REVIEW

if TYPE_CHECKING:
    from faceapp.gui.main_window import MainWindow


class NamingMixin:
    """The main window's identity operations (mixed into :class:`MainWindow`)."""

    def _name_of(self: MainWindow, key: GroupKey) -> str:
        group = self.sidebar_model.group(key)
        return key.kind.title(key.id, getattr(group, "name", None))

    def _person_by_name(self: MainWindow, name: str) -> GroupKey | None:
        for pid, pname in self.sidebar_model.person_names().items():
            if (pname or "").lower() == name.lower():
                return GroupKey(GroupKind.PERSON, pid)
        return None

    def _names(self: MainWindow) -> list[str]:
        return [n for n in self.sidebar_model.person_names().values() if n]

    def name_current(self: MainWindow) -> None:
        """F2: the selected box's group in the photo view, else the selected group (in
        Unknown faces, which have no group name: the selected faces)."""
        box = self.selected_box_face()
        if box is not None:
            self.name_face_group(box)
        elif self.current_key is not None and self.current_key.kind is GroupKind.UNKNOWN:
            self.move_selected_dialog()
        elif self.current_key is not None:
            self.name_group_dialog(self.current_key)

    def name_group_dialog(self: MainWindow, key: GroupKey) -> None:
        """Name a cluster or rename a person. For a cluster, the faces that do not fit
        are looked for in a worker while the dialog is open ("Checking…")."""
        if not key.kind.can_name or self.session.lib is None:
            return
        group = self.sidebar_model.group(key)
        avatar = getattr(group, "avatar_face_id", None)
        is_person = key.kind.is_person
        check = None if is_person else self.session.outlier_checks.start(self.session.lib, key.id)
        dialog = NameDialog(
            "Rename Person" if is_person else "Name This Person",
            f"Who is this? ({group.count} {'face' if group.count == 1 else 'faces'})"
            if group
            else "Who is this?",
            current=(group.name or "") if is_person and group else "",
            names=[n for n in self._names() if not (is_person and group and n == group.name)],
            avatar=avatar,
            thumbnails=self.thumbs,
            checking=check is not None,
            parent=self,
        )
        if check is not None:
            check.checked.connect(
                lambda ids: dialog.set_apart([self.thumbs.get(f) for f in ids or []])
            )
        if dialog.exec() != NameDialog.DialogCode.Accepted:
            return
        self.apply_name(key, dialog.name(), check=check)

    def birth_date(self: MainWindow, key: GroupKey) -> str | None:
        if not key.kind.can_edit_details or self.session.lib is None:
            return None
        from faceapp.engine import birthdays

        return birthdays.birth_date(self.session.lib, key.id)

    def edit_person(self: MainWindow) -> None:
        """Rename a person and set their birth date in one dialog."""
        key = self.current_key
        if key is None or not key.kind.can_edit_details or self.session.lib is None:
            return
        group = self.sidebar_model.group(key)
        name = getattr(group, "name", "") or ""
        born = self.birth_date(key) or ""
        dialog = NameDialog(
            "Edit Person",
            "Name and birth date",
            current=name,
            names=[n for n in self._names() if n != name],
            avatar=group.avatar_face_id if group else None,
            thumbnails=self.thumbs,
            birth_date=born,
            parent=self,
        )
        if dialog.exec() != NameDialog.DialogCode.Accepted:
            return
        if dialog.birth_date() != born:
            self.set_birth_date(key, dialog.birth_date() or None)
        if dialog.name() and dialog.name() != name:
            self.apply_name(key, dialog.name())

    def set_birth_date(self: MainWindow, key: GroupKey, date: str | None) -> bool:
        """One undoable operation; a bad date or older confirmed photos are refused."""
        from faceapp.engine import birthdays

        op = birthdays.set_birth_date
        return self.session.run_operation("Birth Date", op, key.id, date) is not None

    def apply_name(
        self: MainWindow,
        key: GroupKey,
        name: str,
        leave_out: list[int] | None = None,
        check: OutlierCheck | None = None,
    ) -> bool:
        """Name a cluster (only the faces that fit; a known name joins that person) or
        rename a person (a known name merges them, after asking).

        A cluster is named once the outlier check (``check``, else a new one) has
        answered, in a worker; then True means "started". ``leave_out``: the faces to
        leave out, known already (named at once)."""
        if key.kind is GroupKind.CLUSTER:
            if leave_out is not None:
                return self._name_cluster(key, name, leave_out)
            return self._after_check(key.id, lambda out: self._name_cluster(key, name, out), check)
        existing = self._person_by_name(name)
        if existing is not None and existing != key:
            return self.request_merge(key, existing, confirm=key.kind.is_person)
        return self.session.name_group(key, name) is not None

    def _after_check(
        self: MainWindow,
        cluster_id: int,
        act: Callable[[list[int]], Any],
        check: OutlierCheck | None = None,
    ) -> bool:
        """``act(faces that do not fit)`` once the cluster's outlier check has answered
        in its worker (:meth:`LibrarySession.after_outlier_check`, the one path of every
        naming of a cluster), while this window is open. False: not started."""
        started = self.session.after_outlier_check(
            cluster_id, lambda out: None if self.closed else act(out), check
        )
        if started is not None and not started.delivered:
            self.statusBar().showMessage("Checking that every face fits the group…", 4000)
        return started is not None

    def _name_cluster(
        self: MainWindow, key: GroupKey, name: str, leave_out: list[int] | None
    ) -> bool:
        existing = self._person_by_name(name)
        changes = self.session.name_cluster(key.id, name, leave_out)
        target = existing or (
            GroupKey(GroupKind.PERSON, changes.person_id) if changes is not None else None
        )
        if target is not None and target.id is not None:
            self.select_after_refresh(target)
            self.refresh()
        return changes is not None

    def name_faces_dialog(self: MainWindow, face_ids: list[int]) -> None:
        """Name faces: type a new name (a new person) or pick one named before."""
        if not face_ids or self.session.lib is None:
            return
        who = (
            "Who is this?"
            if len(face_ids) == 1
            else f"Who is in the {len(face_ids)} selected faces?"
        )
        dialog = NameDialog(
            "Name Faces",
            f"{who} Type a new name or one you named before.",
            names=self._names(),
            avatar=face_ids[0],
            thumbnails=self.thumbs,
            ok_text="Name",
            new_note="A new person “{}” will be made from these faces.",
            parent=self,
        )
        if dialog.exec() == NameDialog.DialogCode.Accepted:
            self.name_faces(face_ids, dialog.name())

    def name_faces(self: MainWindow, face_ids: list[int], name: str) -> bool:
        """The faces join the person called ``name``, made new when nobody has that name.

        The new person is shown, except from Unknown faces and Review: there the user
        names one person seen once after another, so the window stays where it is."""
        name = " ".join(name.split())
        if not name or not face_ids:
            return False
        existing = self._person_by_name(name)
        if existing is not None:
            return self.request_move(face_ids, existing)
        changes = self.session.name_faces(face_ids, name)
        in_unknown = (
            self.content.currentIndex() == CONTENT_GRID
            and self.current_key is not None
            and self.current_key.kind is GroupKind.UNKNOWN
        )
        if (
            changes is not None
            and changes.person_id is not None
            and self.content.currentIndex() != CONTENT_REVIEW
            and not in_unknown
        ):
            self.select_after_refresh(GroupKey(GroupKind.PERSON, changes.person_id))
            self.refresh()
        return changes is not None

    def name_face_group(self: MainWindow, face_id: int) -> None:
        """Name (or rename) the group a face belongs to; a loose face is named alone."""
        key = self.group_of_face(face_id)
        if key is not None and key.kind.can_name:
            self.name_group_dialog(key)
        else:
            self.name_faces_dialog([face_id])

    def group_of_face(self: MainWindow, face_id: int) -> GroupKey | None:
        lib = self.session.lib
        if lib is None:
            return None
        row = lib.face(face_id)
        if row.person_id is not None:
            return GroupKey(GroupKind.PERSON, row.person_id)
        if row.cluster_id is not None:
            return GroupKey(GroupKind.CLUSTER, row.cluster_id)
        return GroupKey(GroupKind.UNKNOWN, None)

    @Slot(object, object)
    def request_merge(
        self: MainWindow, source: GroupKey, target: GroupKey, confirm: bool = True
    ) -> bool:
        if source == target:
            return False
        s_name, t_name = self._name_of(source), self._name_of(target)
        if confirm and source.kind.is_person and target.kind.is_person:
            answer = self.ask(
                "Merge People",
                f"Merge “{s_name}” into “{t_name}”?\n\nAll faces of {s_name} become {t_name}; "
                f"the name “{s_name}” is removed. You can undo this with Ctrl+Z.",
            )
            if not answer:
                return False
        self.select_after_refresh(target)
        ok = self.session.merge(source, target) is not None
        if not ok:
            self._pending_select = None
        return ok

    @Slot(list, object)
    def request_move(self: MainWindow, face_ids: list[int], target: GroupKey) -> bool:
        return self.session.move_faces(face_ids, target) is not None

    def ask(self: MainWindow, title: str, text: str) -> bool:
        """A yes/no question (tests replace this)."""
        return ask_yes_no(self, title, text)

    def reject_selected(self: MainWindow) -> None:
        key = self.current_key
        ids = self.grid.selected_face_ids()
        if key is None or not key.kind.can_reject or not ids:
            return
        self.session.reject_faces(ids, key)

    def reject_face(self: MainWindow, face_id: int) -> None:
        """Delete on a box in the photo view: the face leaves its group."""
        key = self.group_of_face(face_id)
        if key is not None and key.kind.can_reject:
            self.session.reject_faces([face_id], key)

    def toggle_hidden(self: MainWindow) -> None:
        key = self.current_key
        group = self.sidebar_model.group(key) if key else None
        if group is None or not key.kind.can_hide:
            return
        self.session.set_hidden(key, not group.hidden)

    def move_selected_dialog(self: MainWindow) -> None:
        self.name_faces_dialog(self.grid.selected_face_ids())

    def merge_current_dialog(self: MainWindow) -> None:
        key = self.current_key
        if key is None or not key.kind.can_merge:
            return
        names = self._names()
        if not names:
            self.show_error("Merge", "There is no named person to merge into yet.")
            return
        dialog = NameDialog(
            "Merge Into Person",
            f"Merge all faces of “{self._name_of(key)}” into:",
            names=[n for n in names if n != self._name_of(key)],
            ok_text="Merge",
            require_existing=True,
            parent=self,
        )
        if dialog.exec() == NameDialog.DialogCode.Accepted:
            target = self._person_by_name(dialog.existing() or "")
            if target is not None:
                self.request_merge(key, target)

    # -- review ------------------------------------------------------------------------------

    def show_review(self: MainWindow) -> None:
        if self.session.lib is None:
            return
        self.review_view.reset_examples()
        self.review_view.loading()
        self.content.setCurrentIndex(CONTENT_REVIEW)
        self.review_view.setFocus()
        self.refresh()  # reads the suggestions in the worker too

    def accept_likely(self: MainWindow) -> None:
        if self.session.accept_likely() is not None:
            self.review_view.setFocus()

    @Slot(object, bool)
    def answer_suggestion(self: MainWindow, suggestion: Any, accept: bool) -> None:
        """Yes / No in Review. Yes to "Cluster 7 looks like Anna" names the cluster
        after the outlier check (a worker): its faces that do not fit stay in review."""
        cid = getattr(suggestion, "cluster_id", None)
        if accept and cid is not None:
            answer = self.session.answer_suggestion
            self._after_check(cid, lambda out: answer(suggestion, True, leave_out=out))
            return
        if self.session.answer_suggestion(suggestion, accept) is not None:
            self.review_view.setFocus()  # the refresh brings the next suggestions
