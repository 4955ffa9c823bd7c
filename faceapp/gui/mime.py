"""Drag-and-drop payloads: faces from the grid, groups from the sidebar.

Custom MIME types carry ids as JSON, so drops between views (and into the
Verify dialog) never depend on object identity. A face drag also carries a
text fallback for other applications.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QMimeData

from faceapp.gui.groups import GroupKey

FACES_MIME = "application/x-facealbum-faces"
GROUP_MIME = "application/x-facealbum-group"


def faces_to_mime(face_ids: list[int], source: GroupKey | None = None) -> QMimeData:
    mime = QMimeData()
    payload = {"faces": [int(f) for f in face_ids], "source": source.as_list() if source else None}
    mime.setData(FACES_MIME, json.dumps(payload).encode())
    mime.setText(f"{len(face_ids)} face(s)")
    return mime


def faces_from_mime(mime: QMimeData) -> tuple[list[int], GroupKey | None] | None:
    if not mime.hasFormat(FACES_MIME):
        return None
    try:
        payload = json.loads(bytes(mime.data(FACES_MIME)).decode())
        ids = [int(f) for f in payload["faces"]]
        source = GroupKey.from_list(payload["source"]) if payload.get("source") else None
    except (ValueError, KeyError, TypeError):
        return None
    return ids, source


def group_to_mime(key: GroupKey, name: str = "") -> QMimeData:
    mime = QMimeData()
    mime.setData(GROUP_MIME, json.dumps({"group": key.as_list(), "name": name}).encode())
    mime.setText(name or f"{key.kind} {key.id}")
    return mime


def group_from_mime(mime: QMimeData) -> GroupKey | None:
    if not mime.hasFormat(GROUP_MIME):
        return None
    try:
        payload = json.loads(bytes(mime.data(GROUP_MIME)).decode())
        return GroupKey.from_list(payload["group"])
    except (ValueError, KeyError, TypeError):
        return None
