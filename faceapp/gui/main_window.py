"""The main window: menus, toolbar, sidebar + content, scan strip and status bar.

It wires views to the :class:`~faceapp.gui.session.LibrarySession`; it holds no
engine logic. Every identity change goes through the session (and so through
the undo stack); every long task runs in a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui import undo, workers
from faceapp.gui.dialogs import restore
from faceapp.gui.dialogs.name import NameDialog
from faceapp.gui.dialogs.settings import SettingsDialog
from faceapp.gui.dialogs.verify import VerifyDialog
from faceapp.gui.mime import GroupKey
from faceapp.gui.models import FaceGridModel, SidebarModel, group_title
from faceapp.gui.resources import icon
from faceapp.gui.session import LibrarySession, weights_label
from faceapp.gui.settings import AppSettings, RecentLibrary
from faceapp.gui.thumbnails import ThumbnailCache
from faceapp.gui.views.face_grid import FaceGridView, GridPage
from faceapp.gui.views.photo_view import PhotoView
from faceapp.gui.views.review import ReviewView
from faceapp.gui.views.sidebar import SidebarView
from faceapp.gui.views.welcome import WelcomeView
from faceapp.gui.widgets.banner import Banner
from faceapp.gui.widgets.photo_canvas import FaceMark
from faceapp.gui.widgets.scan_panel import ScanPanel

PAGE_WELCOME, PAGE_LIBRARY = 0, 1
CONTENT_GRID, CONTENT_PHOTO, CONTENT_REVIEW = 0, 1, 2


class MainWindow(QMainWindow):
    refreshed = Signal()  # the views show the library's current state

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
        self.current_key: GroupKey | None = None
        self._refresh_job: workers.Job | None = None
        self._refresh_again = False
        self._refresh_serial = 0
        self._pending_select: tuple[GroupKey, int] | None = None
        self._select_first_after_refresh = False
        self._applying = False
        self.verify_dialog: VerifyDialog | None = None
        self.finetune_dialog: Any = None
        self._build_widgets()
        self._build_actions()
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
        self.grid = FaceGridView(self.grid_model, self.settings.thumb_size)
        self.grid_page = GridPage(self.grid)
        self.photo_view = PhotoView()
        self.review_view = ReviewView(self.thumbs)
        self.review_view.example_source = lambda pid: self.session.group_faces(
            GroupKey("person", pid)
        )
        self.content = QStackedWidget()
        self.content.addWidget(self.grid_page)
        self.content.addWidget(self.photo_view)
        self.content.addWidget(self.review_view)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
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
        status.addPermanentWidget(self.counts_label)
        status.addPermanentWidget(self.weights_widget)

    def _action(
        self,
        text: str,
        slot: Any,
        shortcut: Any = None,
        icon_name: str | None = None,
        tip: str | None = None,
    ) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            if isinstance(shortcut, list):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.act_open = a(
            "&Open Photo Folder…",
            self.open_folder_dialog,
            QKeySequence.StandardKey.Open,
            "open",
            "Open a folder of photos and find the faces in it",
        )
        self.act_open.setIconText("Open")
        self.act_rescan = a(
            "&Rescan Folder", self.rescan, "F5", "rescan", "Look for new or changed photos"
        )
        self.act_rescan.setIconText("Rescan")
        self.act_cancel = a("&Cancel Scan", self.cancel_scan, None, "cancel", "Stop the scan")
        self.act_close = a(
            "&Close Library", self.close_library, QKeySequence.StandardKey.Close, None
        )
        self.act_quit = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_quit.setMenuRole(QAction.MenuRole.QuitRole)

        stack = self.session.undo_stack
        self.act_undo = stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts(QKeySequence.StandardKey.Undo)
        self.act_undo.setIcon(icon("undo"))
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts(
            [QKeySequence("Ctrl+Shift+Z"), *QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)]
        )
        self.act_redo.setIcon(icon("redo"))
        self.addAction(self.act_undo)
        self.addAction(self.act_redo)
        # Toolbar twins with short labels (the menu items carry "Undo <what>").
        self.tb_undo = QAction(icon("undo"), "Undo", self)
        self.tb_redo = QAction(icon("redo"), "Redo", self)
        self.tb_undo.triggered.connect(stack.undo)
        self.tb_redo.triggered.connect(stack.redo)
        self.tb_undo.setEnabled(False)
        self.tb_redo.setEnabled(False)
        stack.canUndoChanged.connect(self.tb_undo.setEnabled)
        stack.canRedoChanged.connect(self.tb_redo.setEnabled)
        stack.undoTextChanged.connect(
            lambda t: self.tb_undo.setToolTip(f"Undo {t} (Ctrl+Z)" if t else "Undo (Ctrl+Z)")
        )
        stack.redoTextChanged.connect(
            lambda t: self.tb_redo.setToolTip(
                f"Redo {t} (Ctrl+Shift+Z)" if t else "Redo (Ctrl+Shift+Z)"
            )
        )
        self.act_select_all = a("Select &All Faces", self.grid.selectAll, None)
        self.act_select_all.setShortcut(QKeySequence.StandardKey.SelectAll)
        self.act_select_all.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.act_settings = a(
            "&Settings…",
            self.show_settings,
            QKeySequence.StandardKey.Preferences
            if not QKeySequence(QKeySequence.StandardKey.Preferences).isEmpty()
            else "Ctrl+,",
            "settings",
            "Device, weights, threshold, clustering and library options",
        )
        self.act_settings.setMenuRole(QAction.MenuRole.PreferencesRole)

        self.act_back = a("&Back to Faces", self.show_grid, ["Esc", "Alt+Left"], "back")
        self.act_zoom_in = a(
            "&Larger Thumbnails", lambda: self.zoom(16), QKeySequence.StandardKey.ZoomIn
        )
        self.act_zoom_out = a(
            "&Smaller Thumbnails", lambda: self.zoom(-16), QKeySequence.StandardKey.ZoomOut
        )
        self.act_sidebar = a("Show &Sidebar", self.toggle_sidebar, "Ctrl+Shift+S")
        self.act_sidebar.setCheckable(True)
        self.act_sidebar.setChecked(True)

        self.act_name = a(
            "&Name…", self.name_current, "F2", "name", "Name this cluster or rename this person"
        )
        self.act_hide = a(
            "&Hide", self.toggle_hidden, "Ctrl+H", "hidden", "Hide or show this group"
        )
        self.act_reject = a(
            "&Not This Person",
            self.reject_selected,
            QKeySequence.StandardKey.Delete,
            "reject",
            "Remove the selected faces from this group and remember it",
        )
        self.act_reject.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.act_move = a("&Move Faces to Person…", self.move_selected_dialog, "Ctrl+M", "person")
        self.act_merge = a("Merge &Into…", self.merge_current_dialog, "Ctrl+Shift+M", "merge")
        self.act_review = a(
            "&Review Suggestions",
            self.show_review,
            "Ctrl+R",
            "review",
            "Answer “Is this …?” questions, most uncertain first",
        )
        self.act_review.setIconText("Review")
        self.act_recluster = a(
            "Re&group Faces",
            self.session.start_cluster,
            "Ctrl+Shift+G",
            None,
            "Cluster the unnamed faces again (names and confirmed faces stay)",
        )
        self.act_verify = a(
            "&Verify Two Photos…",
            self.show_verify,
            "Ctrl+Shift+V",
            "verify",
            "Are two photos the same person?",
        )
        self.act_verify.setIconText("Verify")
        self.act_finetune = a(
            "&Fine-tune Recognition…",
            self.show_finetune,
            None,
            "finetune",
            "Teach the face embedder the people you confirmed",
        )
        self.act_finetune.setIconText("Fine-tune")
        self.act_weights = a("Choose &Weights File…", self.choose_weights, None, "weights")
        self.act_about = a("&About Face Album", self.show_about, None, "info")
        self.act_about.setMenuRole(QAction.MenuRole.AboutRole)
        self.act_about_qt = a("About &Qt", QApplication.aboutQt, None)
        self.act_about_qt.setMenuRole(QAction.MenuRole.AboutQtRole)
        self.act_shortcuts = a("&Keyboard Shortcuts", self.show_shortcuts, "F1")

        # Delete and Ctrl+A belong to the grid only (the sidebar and dialogs have their own).
        self.grid.addAction(self.act_reject)
        self.grid.addAction(self.act_select_all)
        self.removeAction(self.act_reject)
        self.removeAction(self.act_select_all)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addAction(self.act_rescan)
        m.addAction(self.act_cancel)
        m.addSeparator()
        m.addAction(self.act_close)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = bar.addMenu("&Edit")
        m.addAction(self.act_undo)
        m.addAction(self.act_redo)
        m.addSeparator()
        m.addAction(self.act_select_all)
        m.addSeparator()
        m.addAction(self.act_settings)
        m = bar.addMenu("&View")
        m.addAction(self.act_back)
        m.addSeparator()
        m.addAction(self.act_zoom_in)
        m.addAction(self.act_zoom_out)
        m.addSeparator()
        m.addAction(self.act_sidebar)
        m = bar.addMenu("&People")
        for act in (self.act_name, self.act_hide, self.act_merge):
            m.addAction(act)
        m.addSeparator()
        m.addAction(self.act_move)
        m.addAction(self.act_reject)
        m.addSeparator()
        m.addAction(self.act_review)
        m.addAction(self.act_recluster)
        m = bar.addMenu("&Tools")
        m.addAction(self.act_verify)
        m.addAction(self.act_finetune)
        m.addSeparator()
        m.addAction(self.act_weights)
        m = bar.addMenu("&Help")
        m.addAction(self.act_shortcuts)
        m.addSeparator()
        m.addAction(self.act_about)
        m.addAction(self.act_about_qt)

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolBar")
        tb.setMovable(False)
        tb.setIconSize(QSize(20, 20))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (self.act_open, self.act_rescan):
            tb.addAction(act)
        tb.addSeparator()
        for act in (self.act_verify, self.act_review, self.act_finetune):
            tb.addAction(act)
        tb.addSeparator()
        tb.addAction(self.tb_undo)
        tb.addAction(self.tb_redo)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        tb.addAction(self.act_settings)
        self.addToolBar(tb)
        self.toolbar = tb

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
        s.undo_stack.indexChanged.connect(lambda _i: self._update_actions())
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
        self.review_view.backRequested.connect(self.show_grid)
        self.review_view.answered.connect(self.answer_suggestion)

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
        for dialog in (self.verify_dialog, self.finetune_dialog):
            if dialog is not None:
                dialog.close()
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

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.settings.recent()
        for item in items:
            act = self.recent_menu.addAction(icon("folder"), item.folder)
            act.triggered.connect(lambda _=False, it=item: self.open_recent(it))
        if not items:
            self.recent_menu.addAction("No recent libraries").setEnabled(False)

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
        self.welcome.set_recent(self.settings.recent())
        self._update_actions()

    def close_library(self) -> None:
        self.session.close_library()

    # -- scanning -------------------------------------------------------------------------

    def rescan(self) -> None:
        if self.session.lib is not None:
            self.session.start_scan()

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
        if self.current_key is None or self.current_key.kind == "unknown":
            self._select_first_after_refresh = True
            self.refresh()

    @Slot(bool)
    def _on_busy_changed(self, busy: bool) -> None:
        if not busy:
            self.scan_panel.hide()
        self._update_actions()

    # -- weights --------------------------------------------------------------------------

    @Slot(dict)
    def _on_weights_ready(self, info: dict) -> None:
        device = str(info.get("device", "")).upper()
        self.weights_label.setText(f"{weights_label(info.get('source', '?'))} · {device}")
        self.weights_widget.setToolTip(
            f"Weights: {info.get('source')}\nFrom: {info.get('origin')}\n"
            f"SHA-256: {str(info.get('sha256', ''))[:16]}…\n"
            f"Threshold {info.get('threshold')}: {info.get('threshold_source')}"
        )
        if info.get("source") == "random-dev":
            self.banner.show_message(
                "Running with RANDOM development weights: faces will not be recognised.",
                "Choose Weights File…",
            )
        else:
            self.banner.hide()

    @Slot(str)
    def _on_weights_failed(self, text: str) -> None:
        self.weights_label.setText("No weights")
        self.weights_widget.setToolTip(text)
        self.banner.show_message(
            "Face recognition weights could not be loaded, so photos cannot be scanned or "
            f"compared yet.\n{text}",
            "Choose Weights File…",
        )

    def choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose Weights File",
            str(Path.home()),
            "PyTorch state dict (*.pt *.pth);;All files (*)",
        )
        if path:
            self.use_weights_file(Path(path))

    def use_weights_file(self, path: Path | None) -> None:
        self.settings.weights_path = path
        self.settings.sync()
        self.session.forget_analyzer()
        self.banner.hide()
        self.weights_label.setText("Weights: loading…")
        self.session.probe_weights()

    # -- refreshing -----------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Re-read the library in a worker, then update the views.

        ``people.groups`` scans every face; on a large library that takes longer
        than a frame, so it never runs on the GUI thread. Requests that arrive
        while a read is running are folded into one more read.
        """
        lib = self.session.lib
        if lib is None:
            return
        if self._refresh_job is not None:
            self._refresh_again = True
            return
        self._refresh_serial += 1
        serial = self._refresh_serial
        key = self._pending_select[0] if self._pending_select else self.current_key
        want_suggestions = self.content.currentIndex() == CONTENT_REVIEW

        def work(job: workers.Job) -> tuple:
            from faceapp.engine import people

            groups = people.groups(lib)
            faces = None
            if key is not None and any(g.kind == key.kind and g.id == key.id for g in groups):
                faces = people.group_faces(lib, key.kind, key.id)
            suggestions = people.suggestions(lib) if want_suggestions else None
            return serial, lib, key, groups, faces, suggestions

        self._refresh_job = workers.run_in_background(
            work, name="refresh", on_finished=self._apply_refresh, on_failed=self._refresh_failed
        )

    def select_after_refresh(self, key: GroupKey | None) -> None:
        """Select ``key`` once the next library read shows it (after an operation)."""
        self._pending_select = (key, self._refresh_serial) if key is not None else None

    @Slot(object)
    def _refresh_failed(self, exc: BaseException) -> None:
        self._refresh_job = None
        self.statusBar().showMessage(f"Could not read the library: {exc}", 8000)
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    @Slot(object)
    def _apply_refresh(self, result: tuple) -> None:
        self._refresh_job = None
        serial, lib, key, groups, faces, suggestions = result
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
        people = sum(1 for g in groups if g.kind == "person")
        self.counts_label.setText(
            f"{total:,} {'face' if total == 1 else 'faces'} · "
            f"{people:,} {'person' if people == 1 else 'people'}"
        )
        if suggestions is not None and self.content.currentIndex() == CONTENT_REVIEW:
            self.review_view.set_suggestions(suggestions)
        self._update_actions()
        self.refreshed.emit()
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    @property
    def refreshing(self) -> bool:
        return self._refresh_job is not None or self._refresh_again

    @Slot(object)
    def show_group(self, key: GroupKey | None) -> None:
        if self._applying:  # a refresh is re-selecting; it loads the faces itself
            return
        self._load_group(key)
        if self.content.currentIndex() != CONTENT_GRID:
            self.content.setCurrentIndex(CONTENT_GRID)

    def _load_group(self, key: GroupKey | None) -> None:
        changed = key != self.current_key
        self.current_key = key
        group = self.sidebar_model.group(key) if key is not None else None
        if group is None:
            self.grid_model.set_faces([], None)
            if self.session.scanning:
                self.grid_page.set_header("Scanning…", "Faces appear here as they are found")
            else:
                self.grid_page.set_header("No faces yet", "Open a folder with photos of people")
            self._update_actions()
            return
        self._show_faces(key, self.session.group_faces(key), changed)

    def _show_faces(self, key: GroupKey, faces: list[int], changed: bool | None = None) -> None:
        if changed is None:
            changed = key != self.grid_model.group_key
        self.current_key = key
        group = self.sidebar_model.group(key)
        if group is None:
            return
        self.grid_model.set_faces(faces, key)
        if changed:
            self.grid.scrollToTop()
        title = group_title(group.kind, group.id, group.name)
        kind = {
            "person": "Person",
            "cluster": "Unnamed cluster",
            "unknown": "Faces not yet grouped",
        }.get(group.kind, group.kind)
        if getattr(group, "hidden", False):
            kind += " (hidden)"
        n = group.count
        self.grid_page.set_header(title, f"{kind}  ·  {n:,} {'face' if n == 1 else 'faces'}")
        self._update_actions()

    def _update_actions(self) -> None:
        has_lib = self.session.lib is not None
        key = self.current_key
        group = self.sidebar_model.group(key) if key is not None else None
        editable = has_lib  # the engine keeps edits made while clustering runs
        named_kind = key is not None and key.kind in ("person", "cluster")
        is_person = key is not None and key.kind == "person"
        selected = bool(self.grid.selectionModel().selectedIndexes())
        self.act_rescan.setEnabled(has_lib and not self.session.busy)
        self.act_cancel.setEnabled(self.session.scanning)
        self.act_close.setEnabled(has_lib)
        self.act_name.setEnabled(editable and named_kind)
        self.act_name.setText("Re&name…" if key is not None and key.kind == "person" else "&Name…")
        self.act_hide.setEnabled(editable and is_person)
        hidden = bool(getattr(group, "hidden", False))
        self.act_hide.setText("&Show" if hidden else "&Hide")
        self.act_merge.setEnabled(editable and named_kind)
        self.act_reject.setEnabled(editable and named_kind and selected)
        self.act_move.setEnabled(editable and selected)
        self.act_review.setEnabled(has_lib)
        self.act_recluster.setEnabled(has_lib and not self.session.busy)
        self.act_finetune.setEnabled(has_lib and not self.session.busy)
        self.grid_page.name_button.setEnabled(self.act_name.isEnabled())
        self.grid_page.name_button.setText(
            "Rename…" if key is not None and key.kind == "person" else "Name…"
        )
        self.grid_page.hide_button.setEnabled(self.act_hide.isEnabled())
        self.grid_page.hide_button.setText("Show" if hidden else "Hide")
        self.grid_page.hide_button.setIcon(icon("show" if hidden else "hidden"))
        reject_text = (
            "Not in This Group"
            if key is not None and key.kind == "cluster"
            else ("Not This Person")
        )
        self.act_reject.setText("&" + reject_text)
        self.grid_page.reject_button.setText(reject_text)
        self.grid_page.reject_button.setEnabled(self.act_reject.isEnabled())
        self.grid_page.name_button.setVisible(named_kind)
        self.grid_page.hide_button.setVisible(is_person)
        self.grid_page.reject_button.setVisible(named_kind)

    # -- identity operations ----------------------------------------------------------------

    def _name_of(self, key: GroupKey) -> str:
        group = self.sidebar_model.group(key)
        return group_title(key.kind, key.id, getattr(group, "name", None))

    def _person_by_name(self, name: str) -> GroupKey | None:
        for pid, pname in self.sidebar_model.person_names().items():
            if (pname or "").lower() == name.lower():
                return GroupKey("person", pid)
        return None

    def name_current(self) -> None:
        if self.current_key is not None:
            self.name_group_dialog(self.current_key)

    def name_group_dialog(self, key: GroupKey) -> None:
        if key.kind not in ("person", "cluster") or self.session.lib is None:
            return
        group = self.sidebar_model.group(key)
        avatar = getattr(group, "avatar_face_id", None)
        is_person = key.kind == "person"
        names = [n for n in self.sidebar_model.person_names().values() if n]
        dialog = NameDialog(
            "Rename Person" if is_person else "Name This Person",
            f"Who is this? ({group.count} faces)" if group else "Who is this?",
            current=(group.name or "") if is_person and group else "",
            names=[n for n in names if not (is_person and group and n == group.name)],
            avatar=self.thumbs.get(avatar) if avatar is not None else None,
            parent=self,
        )
        if dialog.exec() != NameDialog.DialogCode.Accepted:
            return
        self.apply_name(key, dialog.name())

    def apply_name(self, key: GroupKey, name: str) -> bool:
        """Name a cluster (an existing person's name merges into that person) or rename."""
        existing = self._person_by_name(name)
        if existing is not None and existing != key:
            return self.request_merge(key, existing, confirm=key.kind == "person")
        if key.kind == "cluster":
            command = undo.NameClusterCommand(self.session, key, name)
            ok = self.session.run_command(command)
            if ok and isinstance(command.result, int):
                self.select_after_refresh(GroupKey("person", command.result))
                self.refresh()
            return ok
        return self.session.name_group(key, name)

    @Slot(object, object)
    def request_merge(self, source: GroupKey, target: GroupKey, confirm: bool = True) -> bool:
        if source == target:
            return False
        s_name, t_name = self._name_of(source), self._name_of(target)
        if confirm and source.kind == "person" and target.kind == "person":
            answer = self.ask(
                "Merge People",
                f"Merge “{s_name}” into “{t_name}”?\n\nAll faces of {s_name} become {t_name}; "
                f"the name “{s_name}” is removed. You can undo this with Ctrl+Z.",
            )
            if not answer:
                return False
        self.select_after_refresh(target)
        ok = self.session.merge(source, target, s_name, t_name)
        if not ok:
            self._pending_select = None
        return ok

    @Slot(list, object)
    def request_move(self, face_ids: list[int], target: GroupKey) -> bool:
        return self.session.move_faces(face_ids, target, self._name_of(target))

    def ask(self, title: str, text: str) -> bool:
        """A yes/no question (tests replace this)."""
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def reject_selected(self) -> None:
        key = self.current_key
        ids = self.grid.selected_face_ids()
        if key is None or key.kind not in ("person", "cluster") or not ids:
            return
        self.session.reject_faces(ids, key, self._name_of(key))

    def toggle_hidden(self) -> None:
        key = self.current_key
        group = self.sidebar_model.group(key) if key else None
        if group is None or key.kind != "person":
            return
        self.session.set_hidden(key, not group.hidden, self._name_of(key))

    def move_selected_dialog(self) -> None:
        ids = self.grid.selected_face_ids()
        names = [n for n in self.sidebar_model.person_names().values() if n]
        if not ids:
            return
        if not names:
            self.show_error("Move Faces", "Name a person first; then faces can be moved to them.")
            return
        dialog = NameDialog(
            "Move Faces to Person",
            f"Move {len(ids)} selected {'face' if len(ids) == 1 else 'faces'} to:",
            names=names,
            ok_text="Move",
            require_existing=True,
            parent=self,
        )
        if dialog.exec() == NameDialog.DialogCode.Accepted:
            target = self._person_by_name(dialog.existing() or "")
            if target is not None:
                self.request_move(ids, target)

    def merge_current_dialog(self) -> None:
        key = self.current_key
        if key is None or key.kind not in ("person", "cluster"):
            return
        names = [n for n in self.sidebar_model.person_names().values() if n]
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

    def show_review(self) -> None:
        if self.session.lib is None:
            return
        self.review_view.reset_examples()
        self.review_view.loading()
        self.content.setCurrentIndex(CONTENT_REVIEW)
        self.review_view.setFocus()
        self.refresh()  # reads the suggestions in the worker too

    @Slot(object, bool)
    def answer_suggestion(self, suggestion: Any, accept: bool) -> None:
        if self.session.answer_suggestion(suggestion, accept):
            self.review_view.setFocus()  # the refresh brings the next suggestions

    # -- photo view ------------------------------------------------------------------------

    @Slot(int)
    def show_photo(self, face_id: int) -> None:
        lib = self.session.lib
        if lib is None:
            return
        row = lib.face(face_id)
        path = self.session.photo_file(row.photo_path)
        if path is None:
            return
        names = self.sidebar_model.person_names()
        marks = []
        for f in lib.faces_of_photo(row.photo_id):
            if f.person_id is not None:
                label, named = names.get(f.person_id) or f"Person {f.person_id}", True
            elif f.cluster_id is not None:
                label, named = f"Cluster {f.cluster_id}", False
            else:
                label, named = "Unknown", False
            marks.append((f.id, FaceMark(f.box, label, named)))
        self.photo_view.show_photo(path, marks, face_id)
        self.content.setCurrentIndex(CONTENT_PHOTO)

    def show_grid(self) -> None:
        self.content.setCurrentIndex(CONTENT_GRID)
        self.grid.setFocus()

    # -- tools -------------------------------------------------------------------------------

    def show_verify(self) -> VerifyDialog:
        if self.verify_dialog is None:
            self.verify_dialog = VerifyDialog(self.session, self)
        self.verify_dialog.show()
        self.verify_dialog.raise_()
        self.verify_dialog.activateWindow()
        return self.verify_dialog

    def verify_face(self, side: int) -> None:
        ids = self.grid.selected_face_ids()
        if not ids or self.session.lib is None:
            return
        row = self.session.lib.face(ids[0])
        path = self.session.photo_file(row.photo_path)
        if path is not None:
            self.show_verify().set_photo(side, path, row.box)

    def show_finetune(self) -> Any:
        if self.session.lib is None:
            return None
        try:
            from faceapp.gui.dialogs.finetune import FineTuneDialog
        except ImportError as exc:
            self.show_error("Fine-tune", f"Fine-tuning is not available: {exc}")
            return None
        if self.finetune_dialog is None or self.finetune_dialog.session_lib is not self.session.lib:
            self.finetune_dialog = FineTuneDialog(self.session, self)
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()
        return self.finetune_dialog

    def show_settings(self) -> SettingsDialog:
        dialog = self.make_settings_dialog()
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog)
        return dialog

    def make_settings_dialog(self) -> SettingsDialog:
        model = None
        lib = self.session.lib
        active = lib.active_model() if lib is not None else None
        if active is not None:
            model = (active.threshold, active.threshold_source)
        elif self.session.weights_info:
            info = self.session.weights_info
            model = (float(info["threshold"]), str(info["threshold_source"]))
        return SettingsDialog(self.settings, model_threshold=model, parent=self)

    def apply_settings(self, dialog: SettingsDialog) -> None:
        changed = dialog.save()
        if changed["engine"]:
            self.session.forget_analyzer()
            self.weights_label.setText("Weights: loading…")
            self.session.probe_weights()
        if changed["clustering"] and self.session.lib is not None:
            self.statusBar().showMessage(
                "New clustering options: use People › Regroup Faces to apply them.", 8000
            )

    # -- view --------------------------------------------------------------------------------

    def zoom(self, step: int) -> None:
        size = max(64, min(224, self.grid.delegate.size + step))
        self.settings.thumb_size = size
        self.thumbs.set_size(size)
        self.grid.set_thumb_size(size)

    def toggle_sidebar(self) -> None:
        self.sidebar.setVisible(not self.sidebar.isVisible())
        self.act_sidebar.setChecked(self.sidebar.isVisible())

    # -- context menus -------------------------------------------------------------------------

    def _sidebar_menu(self, pos: Any) -> None:
        index = self.sidebar.indexAt(pos)
        key = self.sidebar_model.key_at(index)
        if key is None:
            return
        self.sidebar.select_key(key)
        menu = QMenu(self)
        if key.kind in ("person", "cluster"):
            menu.addAction(self.act_name)
            menu.addAction(self.act_merge)
            menu.addAction(self.act_hide)
            menu.addSeparator()
        menu.addAction(self.act_review)
        menu.exec(self.sidebar.viewport().mapToGlobal(pos))

    def _grid_menu(self, pos: Any) -> None:
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self)
        fid = self.grid_model.face_at(index.row())
        menu.addAction(icon("photo"), "Show Photo", lambda: self.show_photo(fid))
        menu.addSeparator()
        menu.addAction(self.act_move)
        menu.addAction(self.act_reject)
        menu.addSeparator()
        menu.addAction(icon("verify"), "Verify as Photo A", lambda: self.verify_face(0))
        menu.addAction(icon("verify"), "Verify as Photo B", lambda: self.verify_face(1))
        menu.exec(self.grid.viewport().mapToGlobal(pos))

    # -- messages --------------------------------------------------------------------------------

    @Slot(str, str)
    def show_error(self, title: str, text: str) -> None:
        self.statusBar().showMessage(f"{title}: {text.splitlines()[0] if text else ''}", 10000)
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self
        )
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self._last_error = (title, text)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About Face Album",
            "<h3>Face Album</h3><p>Finds the faces in a photo folder, groups them by person "
            "and lets you name them. Detection: MTCNN; recognition: FaceNet "
            "(Inception-ResNet-v1, 512-d embeddings, squared L2 distance); grouping: HDBSCAN."
            "</p><p>Everything runs on this computer; photos are never modified.</p>",
        )

    def show_shortcuts(self) -> None:
        rows = [
            ("Ctrl+O", "Open a photo folder"),
            ("F5", "Rescan the folder"),
            ("F2 / double-click", "Name a cluster, rename a person"),
            ("Delete", "Not this person (selected faces)"),
            ("Ctrl+M", "Move selected faces to a person"),
            ("Ctrl+H", "Hide or show a person"),
            ("Ctrl+Z / Ctrl+Shift+Z", "Undo / redo"),
            ("Ctrl+R", "Review suggestions (Y / N / arrow keys)"),
            ("Ctrl+Shift+V", "Verify two photos"),
            ("Ctrl++ / Ctrl+-", "Larger / smaller thumbnails"),
            ("Esc", "Back to the faces"),
        ]
        html = (
            "<table cellspacing=6>"
            + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
            + "</table><p>Drag a person or cluster onto another to merge them; "
            "drag faces onto a person to move them.</p>"
        )
        QMessageBox.information(self, "Keyboard Shortcuts", html)
