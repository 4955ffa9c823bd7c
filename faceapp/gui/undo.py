"""Undo commands: the QUndoStack mirrors the engine's operation log.

Every identity change (name, rename, merge, move, "not this person", hide,
answering a suggestion) is one engine call that writes one oplog row in the
library. A command applies its engine call once, before it is pushed (so a
refused operation never reaches the stack); after that, undo and redo call the
engine's ``oplog.undo`` / ``oplog.redo``, which replay the oplog. On opening a
library the stack is rebuilt from ``oplog.history`` so Ctrl+Z works across
restarts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QUndoCommand

from faceapp.gui.mime import GroupKey

if TYPE_CHECKING:
    from faceapp.gui.session import LibrarySession


def _people():
    from faceapp.engine import people

    return people


def _oplog():
    from faceapp.engine import oplog

    return oplog


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class EngineCommand(QUndoCommand):
    """Base: ``apply()`` does the operation the first time; undo/redo go through the oplog."""

    def __init__(self, session: LibrarySession, text: str) -> None:
        super().__init__(text)
        self.session = session
        self._applied = False
        self._skip_undo = False
        self.result: Any = None

    def apply(self) -> None:
        """Run the engine operation (may raise: then the command is not pushed).

        The engine describes what it did ("Merged cluster 4 into Anna (12 faces),
        2 faces left out …"); that description becomes the undo text.
        """
        self.result = self.perform(_people(), self.session.lib)
        if isinstance(self.result, str) and self.result:
            self.setText(self.result)
        self._applied = True

    def perform(self, people: Any, lib: Any) -> Any:
        raise NotImplementedError

    def redo(self) -> None:
        if self._applied:  # push() calls redo(); the operation already ran in apply()
            self._applied = False
            return
        self._replay("redo")

    def undo(self) -> None:
        if self._skip_undo:  # history loaded in the undone state
            self._skip_undo = False
            return
        self._replay("undo")

    def _replay(self, what: str) -> None:
        session = self.session
        if session.lib is None:
            return
        try:
            done = getattr(_oplog(), what)(session.lib)
            if done is None:
                raise RuntimeError(f"the library has nothing to {what}")
        except Exception as exc:
            session.error.emit(
                f"Could not {what}",
                f"{self.text()}: {exc}\n"
                "The undo history was reset to stay in step with the library.",
            )
            session.undo_stack.clear()
            session.changed.emit()
            return
        session.changed.emit()
        session.message.emit(f"{'Undid' if what == 'undo' else 'Redid'}: {self.text()}")


class HistoryCommand(EngineCommand):
    """An operation from an earlier session, read back from the library's oplog."""

    def __init__(self, session: LibrarySession, text: str) -> None:
        super().__init__(session, text)
        self._applied = True


class NameClusterCommand(EngineCommand):
    def __init__(self, session: LibrarySession, key: GroupKey, name: str) -> None:
        super().__init__(session, f"Named cluster {key.id} “{name}”")
        self.key, self.name = key, name

    def perform(self, people: Any, lib: Any) -> Any:
        return people.name_cluster(lib, self.key.id, self.name)


class RenameCommand(EngineCommand):
    def __init__(self, session: LibrarySession, person_id: int, name: str) -> None:
        super().__init__(session, f"Renamed to “{name}”")
        self.person_id, self.name = person_id, name

    def perform(self, people: Any, lib: Any) -> Any:
        return people.rename_person(lib, self.person_id, self.name)


class MergeCommand(EngineCommand):
    def __init__(
        self,
        session: LibrarySession,
        source: GroupKey,
        target: GroupKey,
        source_name: str = "",
        target_name: str = "",
    ) -> None:
        label_s = source_name or f"{source.kind} {source.id}"
        label_t = target_name or f"{target.kind} {target.id}"
        super().__init__(session, f"Merged {label_s} into {label_t}")
        self.source, self.target = source, target

    def perform(self, people: Any, lib: Any) -> Any:
        source = (self.source.kind, self.source.id)
        return people.merge(lib, source, (self.target.kind, self.target.id))


class MoveFacesCommand(EngineCommand):
    def __init__(
        self, session: LibrarySession, face_ids: list[int], target: GroupKey, target_name: str = ""
    ) -> None:
        label = target_name or f"person {target.id}"
        super().__init__(session, f"Moved {_plural(len(face_ids), 'face')} to {label}")
        self.face_ids, self.target = list(face_ids), target

    def perform(self, people: Any, lib: Any) -> Any:
        return people.move_faces(lib, self.face_ids, self.target.id)


class RejectFacesCommand(EngineCommand):
    def __init__(
        self, session: LibrarySession, face_ids: list[int], source: GroupKey, source_name: str = ""
    ) -> None:
        label = source_name or f"{source.kind} {source.id}"
        super().__init__(session, f"Removed {_plural(len(face_ids), 'face')} from {label}")
        self.face_ids, self.source = list(face_ids), source

    def perform(self, people: Any, lib: Any) -> Any:
        if self.source.kind == "cluster":  # "not in this group", remembered by clustering
            return people.remove_from_cluster(lib, self.face_ids, self.source.id)
        return people.reject_faces(lib, self.face_ids, self.source.id)


class HideCommand(EngineCommand):
    def __init__(
        self, session: LibrarySession, key: GroupKey, hidden: bool, name: str = ""
    ) -> None:
        label = name or f"{key.kind} {key.id}"
        super().__init__(session, f"{'Hid' if hidden else 'Showed'} {label}")
        self.key, self.hidden = key, hidden

    def perform(self, people: Any, lib: Any) -> Any:
        return people.set_hidden(lib, self.key.id, self.hidden)


class SuggestionCommand(EngineCommand):
    def __init__(self, session: LibrarySession, suggestion: Any, accept: bool) -> None:
        name = getattr(suggestion, "person_name", "") or f"person {suggestion.person_id}"
        verb = "Confirmed" if accept else "Rejected"
        super().__init__(session, f"{verb} face {suggestion.face_id} as {name}")
        self.suggestion, self.accept = suggestion, accept

    def perform(self, people: Any, lib: Any) -> Any:
        s = self.suggestion
        if self.accept:
            return people.confirm_suggestion(lib, s.face_id, s.person_id)
        return people.reject_suggestion(lib, s.face_id, s.person_id)


def load_history(session: LibrarySession) -> None:
    """Rebuild the undo stack from the library's oplog.

    The engine's history is newest first and linear: operations undone in an
    earlier session come after the last done one; they go above the stack's
    index, ready for redo.
    """
    stack = session.undo_stack
    stack.clear()
    if session.lib is None:
        return
    try:
        entries = list(reversed(_oplog().history(session.lib, limit=None)))
    except Exception:
        return
    undone = []
    for entry in entries:
        cmd = HistoryCommand(session, getattr(entry, "description", "") or str(entry))
        stack.push(cmd)
        if getattr(entry, "state", "done") == "undone":
            undone.append(cmd)
    for cmd in undone:
        cmd._skip_undo = True
    if undone:
        stack.setIndex(stack.count() - len(undone))
    stack.setClean()
