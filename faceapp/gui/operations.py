"""Identity operations and undo as the session runs them; the engine's op log is the history.

Every operation is one engine call returning the engine's ``OpChanges``; the
session hands it to the views (``operationDone``) so they redraw what changed, and
shows the library's own undo state (``oplog.undo_status``), read again after each
operation here and whenever the library changed elsewhere (the session's
:class:`~faceapp.gui.library_watch.LibraryWatch`), so an operation, undo or redo
done by another process (``faceapp undo``) is seen. There is no undo stack in the GUI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faceapp.gui.groups import GroupKey, GroupKind
from faceapp.gui.library_errors import report
from faceapp.gui.outliers import OutlierCheck

if TYPE_CHECKING:
    from faceapp.gui.session import LibrarySession


class OperationsMixin:
    """The session's identity operations, undo and redo (mixed into LibrarySession)."""

    def run_operation(
        self: LibrarySession, title: str, operation: Callable[..., Any], *args: Any
    ) -> Any:
        """Run one engine identity operation; returns its OpChanges (None when refused).

        Operations are single short transactions, so they run here; the views'
        re-reads after them run in workers.
        """
        if self.lib is None:
            return None
        started = time.perf_counter()
        try:
            changes = operation(self.lib, *args)
        except Exception as exc:
            report(self, title, exc)
            return None
        self.last_command_seconds = time.perf_counter() - started
        self._done(changes)
        return changes

    def undo(self: LibrarySession) -> Any:
        """Undo the library's latest operation (whichever process did it) and say which."""
        return self._replay("undo")

    def redo(self: LibrarySession) -> Any:
        return self._replay("redo")

    def _replay(self: LibrarySession, action: str) -> Any:
        from faceapp.engine import oplog

        if self.lib is None:
            return None
        try:
            changes = getattr(oplog, action)(self.lib)
        except Exception as exc:
            report(self, f"Could not {action}", exc)
            return None
        if changes is None:
            self.message.emit(f"Nothing to {action}.")
            self._poll_oplog()
            return None
        self._done(changes)
        return changes

    def _done(self: LibrarySession, changes: Any) -> None:
        self._poll_oplog(quiet=True)
        self.operationDone.emit(changes)
        self.message.emit(changes.status_text)

    def _changed_elsewhere(self: LibrarySession) -> None:
        """Another connection committed: read the undo state, and the views re-read the
        library (while scanning or grouping, only for another process's operation: the
        scan's own writes refresh the views on their timer)."""
        before = self.undo_status
        self._poll_oplog(quiet=True)
        if not self.busy or self.undo_status != before:
            self.changed.emit()

    def _poll_oplog(self: LibrarySession, quiet: bool = False) -> None:
        """Read the undo state; a change nobody here made means another process worked:
        then every view re-reads the library."""
        from faceapp.engine import oplog

        if self.lib is None:
            return
        try:
            status = oplog.undo_status(self.lib)
        except Exception:  # busy or unreadable for a moment: the next poll catches up
            return
        if status == self.undo_status:
            return
        outside = self.undo_status is not None and not quiet
        self.undo_status = status
        self.undoStatusChanged.emit(status)
        if outside:
            self.changed.emit()

    def name_group(self: LibrarySession, key: GroupKey, name: str) -> Any:
        """Rename a person (returns the OpChanges), or name a cluster once its outlier
        check has answered in a worker (returns the pending check; its faces that do
        not fit go to review)."""
        from faceapp.engine import people

        name = name.strip()
        if not name:
            return None
        if key.kind.is_person:
            return self.run_operation("Rename", people.rename_person, key.id, name)
        return self.name_cluster(key.id, name, None)

    def name_faces(self: LibrarySession, face_ids: list[int], name: str) -> Any:
        """Chosen faces become a new person called ``name``."""
        from faceapp.engine import people

        return self.run_operation("Name Faces", people.create_person, name, list(face_ids))

    def merge(self: LibrarySession, source: GroupKey, target: GroupKey) -> Any:
        from faceapp.engine import people

        pair = ((source.kind, source.id), (target.kind, target.id))
        return self.run_operation("Merge", people.merge, *pair)

    def move_faces(self: LibrarySession, face_ids: list[int], target: GroupKey) -> Any:
        from faceapp.engine import people

        return self.run_operation("Move Faces", people.move_faces, list(face_ids), target.id)

    def reject_faces(self: LibrarySession, face_ids: list[int], source: GroupKey) -> Any:
        from faceapp.engine import people

        # from a cluster: "not in this group", remembered by clustering
        op = people.remove_from_cluster if source.kind is GroupKind.CLUSTER else people.reject_faces
        return self.run_operation("Not This Person", op, list(face_ids), source.id)

    def set_hidden(self: LibrarySession, key: GroupKey, hidden: bool) -> Any:
        from faceapp.engine import people

        return self.run_operation("Hide", people.set_hidden, key.id, hidden)

    def answer_suggestion(
        self: LibrarySession, suggestion: Any, accept: bool, leave_out: list[int] | None = None
    ) -> Any:
        """Yes or No to a face or cluster suggestion; ``leave_out``: the faces of a
        cluster that do not fit it (None: Yes waits for the outlier check, in a worker,
        and returns it)."""
        from faceapp.engine import naming, people

        if hasattr(suggestion, "cluster_id"):  # "Cluster 7 looks like Anna"
            cid, pid = suggestion.cluster_id, suggestion.person_id
            if accept and leave_out is None:  # the check first, in a worker
                return self.after_outlier_check(
                    cid, lambda out: self.answer_suggestion(suggestion, True, out)
                )
            if accept:
                return self.run_operation(
                    "Suggestion",
                    lambda lib: (
                        naming.name_cluster(lib, cid, person_id=pid, leave_out=leave_out).changes
                    ),
                )
            return self.run_operation("Suggestion", naming.reject_cluster, cid, pid)
        op = people.confirm_suggestion if accept else people.reject_suggestion
        return self.run_operation("Suggestion", op, suggestion.face_id, suggestion.person_id)

    def accept_likely(self: LibrarySession) -> Any:
        """Confirm every "likely" suggestion: one operation, one undo step."""
        from faceapp.engine import review

        def accept(lib: Any) -> Any:
            changes = review.accept_likely(lib)
            if changes is None:
                raise LookupError("there are no likely suggestions right now")
            return changes

        return self.run_operation("Accept All Likely", accept)

    def name_cluster(
        self: LibrarySession, cluster_id: int, name: str, leave_out: list[int] | None
    ) -> Any:
        """Name a cluster, confirming only the faces that fit; ``leave_out`` go to review
        (None: the outlier check runs first, in a worker, and the pending check is
        returned; the cluster is named when it answers)."""
        from faceapp.engine import naming

        if leave_out is None:
            return self.after_outlier_check(
                cluster_id, lambda out: self.name_cluster(cluster_id, name, out)
            )
        return self.run_operation(
            "Name",
            lambda lib: naming.name_cluster(lib, cluster_id, name, leave_out=leave_out).changes,
        )

    def after_outlier_check(
        self: LibrarySession,
        cluster_id: int,
        act: Callable[[list[int]], Any],
        check: OutlierCheck | None = None,
    ) -> OutlierCheck | None:
        """``act(faces that do not fit)`` once the cluster's outlier check (``check``,
        else a new one) has answered in its worker, never on this thread; one naming
        per cluster at a time, and only while the same library is open. A failed
        check is reported and nothing is named. None: not started."""
        lib = self.lib
        if lib is None:
            return None
        key = (str(lib.path), cluster_id)  # a cluster of the same id in another library
        if key in self.clusters_being_named:
            return None
        self.clusters_being_named.add(key)
        check = check or self.outlier_checks.start(lib, cluster_id)

        def run(out: list[int] | None) -> None:
            self.clusters_being_named.discard(key)
            if self.lib is not lib:
                return
            if out is None:
                report(self, "Name", check.error or RuntimeError("the check failed"))
            else:
                act(out)

        check.then(run)
        return check
