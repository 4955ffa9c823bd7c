"""Sidebar and face-grid models, drag-and-drop payloads, the thumbnail cache (no engine)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QModelIndex, Qt
from PySide6.QtGui import QColor, QImage

from faceapp.gui import mime
from faceapp.gui.groups import GroupKey
from faceapp.gui.models import FaceGridModel, Role, SidebarModel
from faceapp.gui.thumbnails import ThumbnailCache


@dataclass
class G:  # the shape of the engine's album.Group
    kind: str
    id: int | None
    name: str | None
    count: int
    hidden: bool = False
    avatar_face_id: int | None = None


def jpeg(colour: str) -> bytes:
    image = QImage(160, 160, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "JPEG")
    return bytes(data)


class FakeLib:
    """Just what the thumbnail cache reads: face crops."""

    def __init__(self, n: int) -> None:
        self.crop = jpeg("#336699")
        self.n = n
        self.reads = 0

    def face_crop(self, face_id: int) -> bytes:
        self.reads += 1
        if not 0 < face_id <= self.n:
            raise KeyError(face_id)
        return self.crop


GROUPS = [
    G("cluster", 7, None, 12, avatar_face_id=1),
    G("person", 1, "Zoe", 5, avatar_face_id=2),
    G("person", 2, "anna", 9, avatar_face_id=3),
    G("cluster", 3, None, 30, avatar_face_id=4),
    G("unknown", None, None, 40),
    G("person", 4, "Hidden Hal", 2, hidden=True, avatar_face_id=5),
]


@pytest.fixture
def cache(qtbot):
    c = ThumbnailCache(size=96)
    yield c
    c.shutdown()


def rows(model: SidebarModel) -> list[tuple[str, str]]:
    return [
        (model.index(i).data(Role.KIND), model.index(i).data()) for i in range(model.rowCount())
    ]


def test_sidebar_sections_and_order(cache):
    model = SidebarModel(cache)
    model.set_groups(GROUPS)
    assert rows(model) == [
        ("header", "People"),
        ("group", "anna"),
        ("group", "Zoe"),
        ("header", "Clusters"),
        ("group", "Cluster 3"),  # largest first
        ("group", "Cluster 7"),
        ("header", "Unsorted"),
        ("group", "Unknown faces"),
        ("header", "Hidden"),
        ("group", "Hidden Hal"),
    ]
    assert model.index(0).data(Role.COUNT) == 2
    assert not model.flags(model.index(0)) & Qt.ItemFlag.ItemIsSelectable
    unknown = model.index(model.row_of(GroupKey("unknown", None)))
    assert not model.flags(unknown) & Qt.ItemFlag.ItemIsDragEnabled


def test_sidebar_empty_people_hint_and_collapse(cache):
    model = SidebarModel(cache)
    model.set_groups([G("cluster", 1, None, 3)])
    assert rows(model)[:2] == [("header", "People"), ("hint", "Name a cluster to add a person")]
    model.toggle_section("clusters")
    assert ("group", "Cluster 1") not in rows(model)
    model.toggle_section("clusters")
    assert ("group", "Cluster 1") in rows(model)


def test_sidebar_count_change_updates_without_reset(cache, qtbot):
    model = SidebarModel(cache)
    model.set_groups(GROUPS)
    changed = [*GROUPS[:4], G("unknown", None, None, 41), *GROUPS[5:]]
    with qtbot.assertNotEmitted(model.modelReset), qtbot.waitSignal(model.dataChanged):
        model.set_groups(changed)
    assert model.index(model.row_of(GroupKey("unknown", None))).data(Role.COUNT) == 41


def test_group_drag_onto_group_requests_merge(cache, qtbot):
    model = SidebarModel(cache)
    model.set_groups(GROUPS)
    source = model.index(model.row_of(GroupKey("cluster", 7)))
    target = model.index(model.row_of(GroupKey("person", 1)))
    data = model.mimeData([source])
    assert data.hasFormat(mime.GROUP_MIME)
    assert not model.canDropMimeData(data, Qt.DropAction.MoveAction, -1, -1, source)  # itself
    unknown = model.index(model.row_of(GroupKey("unknown", None)))
    assert not model.canDropMimeData(data, Qt.DropAction.MoveAction, -1, -1, unknown)
    with qtbot.waitSignal(model.mergeRequested) as blocker:
        assert model.dropMimeData(data, Qt.DropAction.MoveAction, -1, -1, target)
    assert blocker.args == [GroupKey("cluster", 7), GroupKey("person", 1)]


def test_faces_drop_only_on_people(cache, qtbot):
    model = SidebarModel(cache)
    model.set_groups(GROUPS)
    data = mime.faces_to_mime([5, 6], GroupKey("cluster", 3))
    person = model.index(model.row_of(GroupKey("person", 2)))
    cluster = model.index(model.row_of(GroupKey("cluster", 7)))
    assert not model.canDropMimeData(data, Qt.DropAction.MoveAction, -1, -1, cluster)
    assert not model.canDropMimeData(data, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    with qtbot.waitSignal(model.moveRequested) as blocker:
        assert model.dropMimeData(data, Qt.DropAction.MoveAction, -1, -1, person)
    assert blocker.args == [[5, 6], GroupKey("person", 2)]


def test_mime_round_trip_and_garbage():
    data = mime.faces_to_mime([1, 2, 3], GroupKey("person", 9))
    assert mime.faces_from_mime(data) == ([1, 2, 3], GroupKey("person", 9))
    group = mime.group_to_mime(GroupKey("unknown", None), "Unknown")
    assert mime.group_from_mime(group) == GroupKey("unknown", None)
    broken = mime.faces_to_mime([1])
    broken.setData(mime.FACES_MIME, b"{not json")
    assert mime.faces_from_mime(broken) is None


def test_grid_append_inserts_rows_and_keeps_view(cache, qtbot):
    model = FaceGridModel(cache)
    key = GroupKey("unknown", None)
    model.set_faces([1, 2, 3], key)
    with qtbot.assertNotEmitted(model.modelReset), qtbot.waitSignal(model.rowsInserted):
        model.set_faces([1, 2, 3, 4, 5], key)
    assert model.rowCount() == 5
    with qtbot.waitSignal(model.modelReset):
        model.set_faces([2, 3], key)
    data = model.mimeData([model.index(1), model.index(0)])
    assert mime.faces_from_mime(data) == ([2, 3], key)


def test_grid_of_50k_faces_is_cheap(cache):
    model = FaceGridModel(cache)
    t0 = time.perf_counter()
    model.set_faces(range(1, 50_001), GroupKey("unknown", None))
    assert model.rowCount() == 50_000
    assert model.row_of(49_999) == 49_998
    assert time.perf_counter() - t0 < 0.5


def test_thumbnails_decode_off_thread_and_notify(cache, qtbot):
    lib = FakeLib(100)
    cache.set_library(lib)
    model = FaceGridModel(cache)
    model.set_faces(range(1, 101), GroupKey("unknown", None))
    assert model.index(0).data(Role.IMAGE) is None  # a miss queues it
    with qtbot.waitSignal(model.dataChanged, timeout=5000):
        pass
    image = model.index(0).data(Role.IMAGE)
    assert isinstance(image, QImage) and image.width() == 96
    for i in range(100):
        model.index(i).data(Role.IMAGE)
    qtbot.waitUntil(lambda: cache.peek(100) is not None, timeout=5000)
    reads = lib.reads
    model.index(5).data(Role.IMAGE)
    assert lib.reads == reads  # served from the cache


def test_thumbnail_failures_are_not_retried_forever(cache, qtbot):
    lib = FakeLib(1)
    cache.set_library(lib)
    assert cache.get(999) is None
    qtbot.waitUntil(lambda: cache.pending() == 0, timeout=5000)
    reads = lib.reads
    assert cache.get(999) is None
    qtbot.wait(50)
    assert lib.reads == reads


def test_thumbnail_cache_is_bounded(qtbot):
    cache = ThumbnailCache(size=32, capacity=10)
    cache.set_library(FakeLib(50))
    for fid in range(1, 51):
        cache.request(fid)
    qtbot.waitUntil(lambda: cache.pending() == 0, timeout=5000)
    assert len(cache._images) <= 10
    cache.shutdown()
