"""Item models: the sidebar's groups and the virtualised face grid.

Both are plain :class:`QAbstractListModel` subclasses fed with engine results
(``album.groups`` / ``album.group_faces``). They hold only ids, names and
counts; thumbnails come lazily from :class:`~faceapp.gui.thumbnails.ThumbnailCache`
when a row is painted, so a grid of 50,000 faces costs one list of ints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
    Slot,
)

from faceapp.gui import mime
from faceapp.gui.groups import GroupKey, group_title, kind_of
from faceapp.gui.thumbnails import ThumbnailCache

_Index = QModelIndex | QPersistentModelIndex


class Role(IntEnum):
    KEY = Qt.ItemDataRole.UserRole + 1  # GroupKey (sidebar) / face id (grid)
    KIND = Qt.ItemDataRole.UserRole + 2  # 'header', 'group', 'hint'
    COUNT = Qt.ItemDataRole.UserRole + 3
    AVATAR = Qt.ItemDataRole.UserRole + 4  # face id of the avatar
    IMAGE = Qt.ItemDataRole.UserRole + 5  # QImage thumbnail or None
    SECTION = Qt.ItemDataRole.UserRole + 6
    COLLAPSED = Qt.ItemDataRole.UserRole + 7
    NAMED = Qt.ItemDataRole.UserRole + 8


SECTIONS = ("people", "clusters", "unknown", "hidden")
SECTION_TITLES = {
    "people": "People",
    "clusters": "Clusters",
    "unknown": "Unsorted",
    "hidden": "Hidden",
}
SECTION_HINTS = {
    "people": "Name a cluster to add a person",
    "clusters": "No clusters yet",
    "unknown": "",
    "hidden": "",
}


@dataclass
class SidebarRow:
    kind: str  # 'header', 'group', 'hint'
    section: str
    title: str
    count: int = 0
    key: GroupKey | None = None
    avatar: int | None = None
    named: bool = False


def section_of(group: object) -> str:
    """Which sidebar section a group belongs to (hidden wins over its kind)."""
    if getattr(group, "hidden", False):
        return "hidden"
    return kind_of(group).section


class SidebarModel(QAbstractListModel):
    """Sections (People, Clusters, Unsorted, Hidden) with one row per group.

    Dropping a group on another asks to merge them; dropping faces on a person
    asks to move them. The model only emits the request; the window confirms
    and runs the engine operation.
    """

    mergeRequested = Signal(object, object)  # source GroupKey, target GroupKey
    moveRequested = Signal(list, object)  # face ids, target GroupKey

    def __init__(self, thumbnails: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thumbs = thumbnails
        self._groups: list = []
        self._rows: list[SidebarRow] = []
        self._collapsed: set[str] = set()
        self._avatar_rows: dict[int, list[int]] = {}
        self._filter = ""
        thumbnails.ready.connect(self._on_thumbnails)

    # -- content -------------------------------------------------------------------------

    def set_groups(self, groups: Sequence) -> None:
        """Replace the content; a change of structure resets, a change of counts updates."""
        self._groups = list(groups)
        rows = self._build_rows()
        if [(r.kind, r.key, r.title) for r in rows] == [
            (r.kind, r.key, r.title) for r in self._rows
        ]:
            changed = [i for i, (a, b) in enumerate(zip(rows, self._rows, strict=True)) if a != b]
            self._rows = rows
            self._index_avatars()
            if changed:
                self.dataChanged.emit(self.index(min(changed)), self.index(max(changed)))
            return
        self.beginResetModel()
        self._rows = rows
        self._index_avatars()
        self.endResetModel()

    def groups(self) -> list:
        return list(self._groups)

    def set_filter(self, text: str) -> None:
        """Show only the people whose name contains ``text`` (clusters and unsorted hide)."""
        text = " ".join(text.split()).lower()
        if text == self._filter:
            return
        self._filter = text
        self.beginResetModel()
        self._rows = self._build_rows()
        self._index_avatars()
        self.endResetModel()

    @property
    def filter_text(self) -> str:
        return self._filter

    def _shown(self, group: object) -> bool:
        if not self._filter:
            return True
        return kind_of(group).is_person and self._filter in str(group.name or "").lower()

    def _build_rows(self) -> list[SidebarRow]:
        by_section: dict[str, list] = {s: [] for s in SECTIONS}
        for g in self._groups:
            if not kind_of(g).can_name and not g.count:
                continue  # the engine always reports Unknown, even when empty
            if not self._shown(g):
                continue
            by_section[section_of(g)].append(g)
        by_section["people"].sort(key=lambda g: (str(g.name or "").lower(), g.id))
        by_section["clusters"].sort(key=lambda g: (-g.count, g.id))
        by_section["hidden"].sort(key=lambda g: (str(g.name or "").lower(), g.id))
        rows: list[SidebarRow] = []
        for section in SECTIONS:
            members = by_section[section]
            if section in ("hidden", "unknown") and not members:
                continue
            if self._filter and not members:
                continue
            total = len(members) if section != "unknown" else sum(g.count for g in members)
            rows.append(SidebarRow("header", section, SECTION_TITLES[section], total))
            if section in self._collapsed:
                continue
            if not members and SECTION_HINTS[section]:
                rows.append(SidebarRow("hint", section, SECTION_HINTS[section]))
            for g in members:
                rows.append(
                    SidebarRow(
                        "group",
                        section,
                        group_title(g),
                        int(g.count),
                        GroupKey.of(g),
                        g.avatar_face_id,
                        kind_of(g).is_person,
                    )
                )
        return rows

    def _index_avatars(self) -> None:
        self._avatar_rows = {}
        for i, r in enumerate(self._rows):
            if r.avatar is not None:
                self._avatar_rows.setdefault(int(r.avatar), []).append(i)

    def toggle_section(self, section: str) -> None:
        self._collapsed ^= {section}
        self.beginResetModel()
        self._rows = self._build_rows()
        self._index_avatars()
        self.endResetModel()

    def row_of(self, key: GroupKey) -> int:
        for i, r in enumerate(self._rows):
            if r.key == key:
                return i
        return -1

    def key_at(self, index: _Index) -> GroupKey | None:
        if not index.isValid():
            return None
        return self._rows[index.row()].key

    def row_data(self, index: _Index) -> SidebarRow | None:
        return self._rows[index.row()] if index.isValid() else None

    def first_group_row(self) -> int:
        for i, r in enumerate(self._rows):
            if r.kind == "group":
                return i
        return -1

    def group(self, key: GroupKey) -> object | None:
        for g in self._groups:
            if GroupKey.of(g) == key:
                return g
        return None

    def person_names(self) -> dict[int, str]:
        return {g.id: g.name for g in self._groups if kind_of(g).is_person}

    # -- Qt model interface -------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.title
        if role == Role.KIND:
            return row.kind
        if role == Role.KEY:
            return row.key
        if role == Role.COUNT:
            return row.count
        if role == Role.SECTION:
            return row.section
        if role == Role.COLLAPSED:
            return row.section in self._collapsed
        if role == Role.NAMED:
            return row.named
        if role == Role.AVATAR:
            return row.avatar
        if role == Role.IMAGE:
            return None if row.avatar is None else self._thumbs.get(int(row.avatar))
        if role == Qt.ItemDataRole.ToolTipRole and row.kind == "group":
            noun = "face" if row.count == 1 else "faces"
            hint = "drag onto another to merge" if row.key.kind.can_merge else ""
            return f"{row.title} — {row.count} {noun}" + (f"\n({hint})" if hint else "")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{row.title}, {row.count}"
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        row = self._rows[index.row()]
        if row.kind == "header":
            return Qt.ItemFlag.ItemIsEnabled
        if row.kind == "hint":
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if row.key.kind.can_merge:
            flags |= Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemIsDropEnabled
        return flags

    # -- drag and drop ------------------------------------------------------------------

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction | Qt.DropAction.CopyAction

    def mimeTypes(self) -> list[str]:
        return [mime.GROUP_MIME, mime.FACES_MIME]

    def mimeData(self, indexes: Sequence[_Index]) -> QMimeData | None:
        rows = [self._rows[i.row()] for i in indexes if i.isValid()]
        rows = [r for r in rows if r.key is not None]
        if not rows:
            return None
        return mime.group_to_mime(rows[0].key, rows[0].title)

    def _drop_target(self, row: int, parent: _Index) -> SidebarRow | None:
        # Dropping *on* an item gives parent=item, row=-1; between items is not a target.
        if parent.isValid() and row == -1:
            return self._rows[parent.row()]
        return None

    def canDropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: _Index
    ) -> bool:
        target = self._drop_target(row, parent)
        if target is None or target.key is None:
            return False
        source = mime.group_from_mime(data)
        if source is not None:
            return target.key.kind.can_merge and source != target.key
        faces = mime.faces_from_mime(data)
        if faces is not None:
            receives = target.key.kind.can_receive_faces
            return receives and faces[1] != target.key and bool(faces[0])
        return False

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: _Index
    ) -> bool:
        if action == Qt.DropAction.IgnoreAction:
            return True
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        target = self._drop_target(row, parent)
        source = mime.group_from_mime(data)
        if source is not None:
            self.mergeRequested.emit(source, target.key)
            return True
        faces = mime.faces_from_mime(data)
        if faces is not None:
            self.moveRequested.emit(faces[0], target.key)
            return True
        return False

    def removeRows(self, row: int, count: int, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        return False  # a drop never removes rows itself; the refresh does

    # -- thumbnails ---------------------------------------------------------------------

    @Slot(list)
    def _on_thumbnails(self, face_ids: list[int]) -> None:
        rows = [r for fid in face_ids for r in self._avatar_rows.get(fid, ())]
        if rows:
            self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)), [Role.IMAGE])


class FaceGridModel(QAbstractListModel):
    """The faces of one group, as a flat list of ids; thumbnails load on demand."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thumbs = thumbnails
        self._ids: list[int] = []
        self._rows: dict[int, int] | None = None
        self.group_key: GroupKey | None = None
        thumbnails.ready.connect(self._on_thumbnails)

    def set_faces(self, face_ids: Sequence[int], key: GroupKey | None = None) -> None:
        """Show these faces; appending (a scan in progress) inserts rows, keeping the view."""
        ids = [int(f) for f in face_ids]
        same_group = key == self.group_key
        self.group_key = key
        if same_group and ids == self._ids:
            return
        old = len(self._ids)
        if same_group and old and len(ids) > old and ids[:old] == self._ids:
            self.beginInsertRows(QModelIndex(), old, len(ids) - 1)
            self._ids = ids
            self._rows = None
            self.endInsertRows()
            return
        self.beginResetModel()
        self._ids = ids
        self._rows = None
        self.endResetModel()

    def face_ids(self) -> list[int]:
        return list(self._ids)

    def face_at(self, row: int) -> int:
        return self._ids[row]

    def row_of(self, face_id: int) -> int:
        if self._rows is None:
            self._rows = {fid: i for i, fid in enumerate(self._ids)}
        return self._rows.get(face_id, -1)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        fid = self._ids[index.row()]
        if role == Role.IMAGE:
            return self._thumbs.get(fid)
        if role == Role.KEY:
            return fid
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"Face {fid}"
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        )

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction | Qt.DropAction.CopyAction

    def mimeTypes(self) -> list[str]:
        return [mime.FACES_MIME]

    def mimeData(self, indexes: Sequence[_Index]) -> QMimeData | None:
        ids = [self._ids[i.row()] for i in sorted(indexes, key=lambda i: i.row()) if i.isValid()]
        return mime.faces_to_mime(ids, self.group_key) if ids else None

    def removeRows(self, row: int, count: int, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        return False

    @Slot(list)
    def _on_thumbnails(self, face_ids: list[int]) -> None:
        if not self._ids:
            return
        rows = [r for r in (self.row_of(f) for f in face_ids) if r >= 0]
        if not rows:
            return
        # Contiguous runs keep the number of repaint requests small.
        rows.sort()
        start = prev = rows[0]
        for r in rows[1:]:
            if r != prev + 1:
                self.dataChanged.emit(self.index(start), self.index(prev), [Role.IMAGE])
                start = r
            prev = r
        self.dataChanged.emit(self.index(start), self.index(prev), [Role.IMAGE])
