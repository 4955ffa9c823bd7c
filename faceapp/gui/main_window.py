"""The main window: menus, toolbar, sidebar + content, scan strip and status bar.

It wires views to the :class:`~faceapp.gui.session.LibrarySession`; it holds no
engine logic. Every identity change goes through the session (and so into the
engine's op log, whose undo state the Undo/Redo actions show); every long task
runs in a worker. The window's ideas live in their own modules: actions (declared
once), menus (built from them), refreshing, naming, the photo view and the tools,
mixed in here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui import actions
from faceapp.gui.dialogs import help as help_dialogs
from faceapp.gui.dialogs import restore
from faceapp.gui.dialogs.error import error_box
from faceapp.gui.groups import GroupKey, GroupKind
from faceapp.gui.menus import MenusMixin
from faceapp.gui.models import FaceGridModel, SidebarModel
from faceapp.gui.naming import NamingMixin
from faceapp.gui.photos import PhotoMixin
from faceapp.gui.refresh import CONTENT_GRID, RefreshMixin
from faceapp.gui.resources import icon
from faceapp.gui.session import LibrarySession
from faceapp.gui.settings import AppSettings, RecentLibrary
from faceapp.gui.thumbnails import ThumbnailCache
from faceapp.gui.tools import ToolsMixin
from faceapp.gui.views.face_grid import FaceGridView, GridPage
from faceapp.gui.views.photo_grid import PhotoGridView
from faceapp.gui.views.photo_view import PhotoView
from faceapp.gui.views.review import ReviewView
from faceapp.gui.views.sidebar import SidebarPanel, SidebarView
from faceapp.gui.views.welcome import WelcomeView
from faceapp.gui.widgets.banner import Banner
from faceapp.gui.widgets.scan_panel import ScanPanel

PAGE_WELCOME, PAGE_LIBRARY = 0, 1


class MainWindow(MenusMixin, RefreshMixin, NamingMixin, PhotoMixin, ToolsMixin, QMainWindow):
    refreshed = Signal()  # the views show the library's current state
    photos_loaded = Signal()  # the photo grid shows the photos asked for
    face_added = Signal(int)  # a face drawn by hand was stored

    def __init__(
        self,
        session: LibrarySession | None = None,
        *,
        probe_weights: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = session.settings if session else AppSettings()
        self.session = session or LibrarySession(self.settings, self)
        self.setWindowTitle("Face Album")
        self.setWindowIcon(icon("app"))
        self.setMinimumSize(900, 600)
        self.thumbs = ThumbnailCache(size=self.settings.thumb_size, parent=self)
        self.sidebar_model = SidebarModel(self.thumbs, self)
        self.grid_model = FaceGridModel(self.thumbs, self)
        self._init_refresh()
        self.closed = False
        self._regroup_pending = False  # a grouping change waits for the scan to end
        self.verify_dialog: Any = None
        self.problems_dialog: Any = None
        self.problems: list = []
        self.finetune_dialog: Any = None
        self.models_dialog: Any = None
        self._build_widgets()
        self.actions_by_name = actions.create_actions(self)
        actions.create_undo_actions(self)
        self.add_face_button = self.photo_view.add_action_button(self.act_add_face)
        self._build_menus()
        self._build_toolbar()
        self._connect()
        self._restore_geometry()
        self.welcome.set_recent(self.settings.recent())
        self._update_actions()
        if probe_weights:
            QTimer.singleShot(300, self.session.probe_weights)

    # -- construction -------------------------------------------------------------------

    def _build_widgets(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.banner = Banner()
        self.pages = QStackedWidget()
        self.welcome = WelcomeView()
        self.sidebar = SidebarView(self.sidebar_model)
        self.sidebar_panel = SidebarPanel(self.sidebar)
        self.grid = FaceGridView(self.grid_model, self.settings.thumb_size)
        self.photo_grid = PhotoGridView()
        self.grid_page = GridPage(self.grid, self.photo_grid)
        self.photo_view = PhotoView()
        self.review_view = ReviewView(self.thumbs)
        self.review_view.cluster_face = lambda cid: next(
            iter(self.session.group_faces(GroupKey(GroupKind.CLUSTER, cid))), None
        )
        self.review_view.example_source = lambda pid: self.session.group_faces(
            GroupKey(GroupKind.PERSON, pid)
        )
        self.content = QStackedWidget()
        self.content.addWidget(self.grid_page)
        self.content.addWidget(self.photo_view)
        self.content.addWidget(self.review_view)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar_panel)
        self.splitter.addWidget(self.content)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([260, 900])
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(1)
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.splitter)
        self.scan_panel = ScanPanel()
        layout.addWidget(self.banner)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.scan_panel)
        self.setCentralWidget(central)

        status = self.statusBar()
        status.setSizeGripEnabled(True)
        self.counts_label = QLabel()
        self.weights_widget = QWidget()
        wl = QHBoxLayout(self.weights_widget)
        wl.setContentsMargins(6, 0, 6, 0)
        wl.setSpacing(4)
        self.weights_icon = QLabel()
        self.weights_icon.setPixmap(icon("weights").pixmap(QSize(14, 14)))
        self.weights_label = QLabel("Weights: loading…")
        wl.addWidget(self.weights_icon)
        wl.addWidget(self.weights_label)
        self.problems_button = QPushButton(icon("warning"), "")
        self.problems_button.setFlat(True)
        self.problems_button.setToolTip("Files the scan could not use: see why, try again")
        self.problems_button.hide()
        status.addPermanentWidget(self.problems_button)
        status.addPermanentWidget(self.counts_label)
        status.addPermanentWidget(self.weights_widget)

    def _connect(self) -> None:
        s = self.session
        s.libraryOpened.connect(self._on_library_opened)
        s.libraryClosed.connect(self._on_library_closed)
        s.changed.connect(self.refresh)
        s.scanStarted.connect(self._on_scan_started)
        s.scanProgress.connect(self.scan_panel.update_progress)
        s.scanFinished.connect(self._on_scan_finished)
        s.clusterStarted.connect(self.scan_panel.start_clustering)
        s.clusterProgress.connect(self.scan_panel.clustering_progress)
        s.clusterFinished.connect(self._on_cluster_finished)
        s.busyChanged.connect(self._on_busy_changed)
        s.weightsReady.connect(self._on_weights_ready)
        s.weightsFailed.connect(self._on_weights_failed)
        s.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        s.error.connect(self.show_error)
        s.damaged.connect(lambda path, text: restore.offer_restore(self, s, path, text))
        s.undoStatusChanged.connect(lambda status: actions.show_undo_status(self, status))
        s.operationDone.connect(self.refresh)
        self.welcome.openFolderClicked.connect(self.open_folder_dialog)
        self.welcome.recentChosen.connect(self.open_recent)
        self.scan_panel.cancelClicked.connect(self.cancel_scan)
        self.banner.actionClicked.connect(self.choose_weights)
        self.sidebar.groupSelected.connect(self.show_group)
        self.sidebar.renameRequested.connect(self.name_group_dialog)
        self.sidebar.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.sidebar.customContextMenuRequested.connect(self._sidebar_menu)
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._grid_menu)
        self.grid.faceActivated.connect(self.show_photo)
        self.grid.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        # Queued: a drop finishes before any confirmation dialog opens.
        self.sidebar_model.mergeRequested.connect(
            self.request_merge, Qt.ConnectionType.QueuedConnection
        )
        self.sidebar_model.moveRequested.connect(
            self.request_move, Qt.ConnectionType.QueuedConnection
        )
        self.grid_page.name_button.clicked.connect(self.name_current)
        self.grid_page.hide_button.clicked.connect(self.toggle_hidden)
        self.grid_page.reject_button.clicked.connect(self.reject_selected)
        self.grid_page.review_button.clicked.connect(self.show_review)
        self.photo_view.backRequested.connect(self.show_grid)
        self.photo_view.faceMenuRequested.connect(self.box_menu)
        self.photo_view.faceChosen.connect(lambda _f: self._update_actions())
        self.photo_view.revealFailed.connect(self.reveal_failed)
        self.review_view.backRequested.connect(self.show_grid)
        self.review_view.answered.connect(self.answer_suggestion)
        self.grid_page.tabs.currentChanged.connect(self._on_page_tab)
        self.photo_grid.photoActivated.connect(self.show_photo)
        self.photo_view.prev.clicked.connect(self.previous_photo)
        self.photo_view.canvas.boxDrawn.connect(self.add_face_box)
        self.photo_view.next.clicked.connect(self.next_photo)
        self.sidebar.peopleSelected.connect(self.show_together)
        self.problems_button.clicked.connect(self.show_problems)
        self.review_view.acceptLikelyRequested.connect(self.accept_likely)
        self.review_view.nameRequested.connect(lambda fid: self.name_faces_dialog([fid]))

    # -- geometry -------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1240, 800)
        splitter = self.settings.value("window/splitter")
        if isinstance(splitter, QByteArray) and not splitter.isEmpty():
            self.splitter.restoreState(splitter)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.scanning and not self.ask(
            "Quit Face Album",
            "A scan is running. Quit anyway? The photos scanned so far are kept and the "
            "next scan continues where this one stopped.",
        ):
            event.ignore()
            return
        self.settings.set_value("window/geometry", self.saveGeometry())
        self.settings.set_value("window/splitter", self.splitter.saveState())
        self.settings.sync()
        for dialog in (
            self.verify_dialog,
            self.finetune_dialog,
            self.models_dialog,
            self.problems_dialog,
        ):
            if dialog is not None:
                dialog.close()
        self.closed = True  # no more library reads into views that are going away
        self.session.shutdown()
        self.thumbs.shutdown()
        super().closeEvent(event)

    # -- opening ----------------------------------------------------------------------------

    @Slot()
    def open_folder_dialog(self) -> None:
        start = str(self.session.folder or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open Photo Folder", start)
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path, *, scan: bool = True) -> Any:
        return self.session.open_folder(folder, scan=scan)

    def open_recent(self, item: RecentLibrary) -> Any:
        if not Path(item.library).exists():
            self.settings.remove_recent(item.library)
            self.welcome.set_recent(self.settings.recent())
            if Path(item.folder).is_dir():
                return self.open_folder(Path(item.folder))
            self.show_error("Open Recent", f"The library for {item.folder} no longer exists.")
            return None
        return self.session.open_library_file(Path(item.library))

    @Slot(object)
    def _on_library_opened(self, lib: Any) -> None:
        self.thumbs.set_library(lib)
        self.review_view.lib = lib
        self.review_view.reset_examples()
        self.current_key = None
        self.grid_model.set_faces([], None)
        self.sidebar_model.set_groups([])
        self.pages.setCurrentIndex(PAGE_LIBRARY)
        self.content.setCurrentIndex(CONTENT_GRID)
        folder = self.session.folder
        self.setWindowTitle(f"{folder.name if folder else 'Library'} — Face Album")
        self.welcome.set_recent(self.settings.recent())
        self.statusBar().showMessage(f"Opened {folder.name if folder else 'the library'}", 4000)
        self._update_actions()

    @Slot()
    def _on_library_closed(self) -> None:
        self.thumbs.set_library(None)
        self.sidebar_model.set_groups([])
        self.grid_model.set_faces([], None)
        self.current_key = None
        self.pages.setCurrentIndex(PAGE_WELCOME)
        self.scan_panel.hide()
        self.setWindowTitle("Face Album")
        self.counts_label.clear()
        self.show_problem_count([])  # no library, no problems to show
        self.welcome.set_recent(self.settings.recent())
        self._update_actions()

    def close_library(self) -> None:
        self.session.close_library()

    # -- scanning -------------------------------------------------------------------------

    def rescan(self) -> None:
        if self.session.lib is not None:
            self.session.start_scan()

    def regroup(self) -> None:
        self.session.start_cluster()

    def cancel_scan(self) -> None:
        if self.session.scanning:
            self.scan_panel.cancelling()
            self.session.cancel_scan()

    @Slot()
    def _on_scan_started(self) -> None:
        self.scan_panel.start_scan(self.session.folder)
        self.grid.empty_text = "Looking for faces… they appear here as the scan finds them."

    @Slot(object)
    def _on_scan_finished(self, report: Any) -> None:
        if report.cancelled:
            self.scan_panel.hide()
        self.grid.empty_text = "No faces here."

    @Slot(object)
    def _on_cluster_finished(self, summary: Any) -> None:
        if not self.session.busy:
            self.scan_panel.hide()
        # Faces seen during the scan were unsorted; now that there are groups, show one.
        if self.current_key is None or not self.current_key.kind.can_name:
            self._select_first_after_refresh = True
            self.refresh()

    @Slot(bool)
    def _on_busy_changed(self, busy: bool) -> None:
        if not busy and self._regroup_pending:
            self._regroup_pending = False
            QTimer.singleShot(0, self.regroup_when_idle)
        if not busy:
            self.scan_panel.hide()
        self._update_actions()

    # -- view --------------------------------------------------------------------------------

    def zoom(self, step: int) -> None:
        size = max(64, min(224, self.grid.delegate.size + step))
        self.settings.thumb_size = size
        self.thumbs.set_size(size)
        self.grid.set_thumb_size(size)

    def zoom_in(self) -> None:
        self.zoom(16)

    def zoom_out(self) -> None:
        self.zoom(-16)

    def select_all_faces(self) -> None:
        self.grid.selectAll()

    def toggle_sidebar(self) -> None:
        self.sidebar_panel.setVisible(not self.sidebar_panel.isVisible())
        self.act_sidebar.setChecked(self.sidebar_panel.isVisible())

    # -- messages --------------------------------------------------------------------------------

    @Slot(str, str)
    def show_error(self, title: str, text: str) -> None:
        self.statusBar().showMessage(f"{title}: {text.splitlines()[0] if text else ''}", 10000)
        box = error_box(self, title, text)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self._last_error = (title, text)

    def show_about(self) -> None:
        help_dialogs.show_about(self)

    def show_about_qt(self) -> None:
        QApplication.aboutQt()

    def show_shortcuts(self) -> None:
        help_dialogs.show_shortcuts(self)
