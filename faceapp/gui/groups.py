"""What a sidebar group is and what the user can do with it.

The engine names three kinds of group: a named person, an unnamed cluster and
the unknown (ungrouped) faces. Views and actions ask the kind what it can do
(``can_name``, ``can_merge``…) instead of comparing strings, the way Picard's
items answer ``can_save()`` and its main window enables actions from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from faceapp.engine import album


class GroupKind(StrEnum):
    """A group's kind; the value is the engine's string, so engine calls take it as is."""

    PERSON = "person"
    CLUSTER = "cluster"
    UNKNOWN = "unknown"

    @property
    def is_person(self) -> bool:
        return self is GroupKind.PERSON

    @property
    def can_name(self) -> bool:
        """Name a cluster, rename a person (the unknown faces have no name)."""
        return self is not GroupKind.UNKNOWN

    @property
    def can_merge(self) -> bool:
        """Merge the whole group into a person (or drag it onto one)."""
        return self is not GroupKind.UNKNOWN

    @property
    def can_hide(self) -> bool:
        return self is GroupKind.PERSON

    @property
    def can_reject(self) -> bool:
        """ "Not this person" / "not in this group" for selected faces."""
        return self is not GroupKind.UNKNOWN

    @property
    def can_receive_faces(self) -> bool:
        """Faces can be moved (dropped) into it."""
        return self is GroupKind.PERSON

    @property
    def can_set_cover(self) -> bool:
        return self is GroupKind.PERSON

    @property
    def can_edit_details(self) -> bool:
        """Birth date and other details a person has."""
        return self is GroupKind.PERSON

    @property
    def section(self) -> str:
        return {GroupKind.PERSON: "people", GroupKind.CLUSTER: "clusters"}.get(self, "unknown")

    @property
    def description(self) -> str:
        return {
            GroupKind.PERSON: "Person",
            GroupKind.CLUSTER: "Unnamed cluster",
            GroupKind.UNKNOWN: "Faces not yet grouped",
        }[self]

    @property
    def name_text(self) -> str:
        return "Rename…" if self.is_person else "Name…"

    @property
    def reject_text(self) -> str:
        return "Not in This Group" if self is GroupKind.CLUSTER else "Not This Person"

    def title(self, gid: int | None, name: str | None = None) -> str:
        return album.group_title(self.value, gid, name)


def kind_of(group: object) -> GroupKind:
    """The kind of an engine group (or face row) object."""
    return GroupKind(group.kind)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GroupKey:
    """Identifies a sidebar group: its kind and id (None for the unknown faces)."""

    kind: GroupKind
    id: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", GroupKind(self.kind))

    def as_list(self) -> list:
        return [str(self.kind), self.id]

    @classmethod
    def from_list(cls, value: list) -> GroupKey:
        kind, gid = value
        return cls(GroupKind(str(kind)), None if gid is None else int(gid))

    @classmethod
    def of(cls, group: object) -> GroupKey:
        return cls(kind_of(group), group.id)  # type: ignore[attr-defined]


def group_title(group: object) -> str:
    """The title the user sees for an engine group."""
    return kind_of(group).title(group.id, getattr(group, "name", None))  # type: ignore[attr-defined]
