"""The main window's menus: the menu bar and toolbar built from the actions'
declarations, the recent-libraries menu, the context menus, and which actions the
window's state allows (mixed into :class:`~faceapp.gui.main_window.MainWindow`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QMenu, QSizePolicy, QToolBar, QWidget

from faceapp.gui import actions
from faceapp.gui.groups import GroupKind
from faceapp.gui.refresh import CONTENT_PHOTO
from faceapp.gui.resources import icon

if TYPE_CHECKING:
    from faceapp.gui.main_window import MainWindow


class MenusMixin:
    """Menus, toolbar and the actions' enabled state (mixed into :class:`MainWindow`)."""

    # -- menu bar and toolbar ------------------------------------------------------------

    def _named_action(self: MainWindow, name: str) -> Any:
        return self.actions_by_name.get(name) or getattr(self, name.lstrip("@"))

    def _build_menus(self: MainWindow) -> None:
        bar = self.menuBar()
        for title, names in actions.MENUS:
            menu = bar.addMenu(title)
            for name in names:
                if name == "-":
                    menu.addSeparator()
                elif name == "@recent":
                    self.recent_menu = menu.addMenu("Open &Recent")
                    self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
                else:
                    menu.addAction(self._named_action(name))

    def _build_toolbar(self: MainWindow) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolBar")
        tb.setMovable(False)
        tb.setIconSize(QSize(20, 20))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for name in actions.TOOLBAR:
            if name == "-":
                tb.addSeparator()
            elif name == "~":
                spacer = QWidget()
                spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
                tb.addWidget(spacer)
            else:
                tb.addAction(self._named_action(name))
        self.addToolBar(tb)
        self.toolbar = tb

    def _fill_recent_menu(self: MainWindow) -> None:
        self.recent_menu.clear()
        items = self.settings.recent()
        for item in items:
            act = self.recent_menu.addAction(icon("folder"), item.folder)
            act.triggered.connect(lambda _=False, it=item: self.open_recent(it))
        if not items:
            self.recent_menu.addAction("No recent libraries").setEnabled(False)

    # -- what the actions may do now -------------------------------------------------------

    def context(self: MainWindow) -> actions.Context:
        """What the window shows now, for the actions' rules."""
        key = self.current_key
        group = self.sidebar_model.group(key) if key is not None else None
        return actions.Context(
            has_lib=self.session.lib is not None,
            busy=self.session.busy,
            scanning=self.session.scanning,
            kind=key.kind if group is not None else None,
            hidden=bool(getattr(group, "hidden", False)),
            faces_selected=bool(self.grid.selectionModel().selectedIndexes()),
            box_selected=self.selected_box_face() is not None,
            photo_shown=self.content.currentIndex() == CONTENT_PHOTO,
        )

    def _update_actions(self: MainWindow) -> None:
        ctx = self.context()
        actions.update_actions(self.actions_by_name, ctx)
        page = self.grid_page
        page.hide_button.setEnabled(self.act_hide.isEnabled())
        page.reject_button.setEnabled(self.act_reject.isEnabled())
        page.hide_button.setText("Show" if ctx.hidden else "Hide")
        page.hide_button.setIcon(icon("show" if ctx.hidden else "hidden"))
        kind = ctx.kind
        loose = kind is GroupKind.UNKNOWN  # no group name here: the selected faces are named
        page.name_button.setEnabled(self.act_name.isEnabled())
        page.name_button.setText(
            "Name Selected…" if loose else kind.name_text if kind is not None else "Name…"
        )
        page.name_button.setToolTip("Select faces, then name them" if loose else "")
        page.reject_button.setText(kind.reject_text if kind is not None else "Not This Person")
        # several people's photos together: the buttons would act on one of them only
        one = kind is not None and len(self.sidebar.selected_people()) < 2
        page.name_button.setVisible(one and (kind.can_name or loose))
        page.hide_button.setVisible(one and kind.can_hide)
        page.reject_button.setVisible(one and kind.can_reject)

    # -- context menus -------------------------------------------------------------------------

    def exec_menu(self: MainWindow, menu: QMenu, pos: Any) -> None:
        """Show a context menu at a global position (tests replace this)."""
        menu.exec(pos)

    def _sidebar_menu(self: MainWindow, pos: Any) -> None:
        index = self.sidebar.indexAt(pos)
        key = self.sidebar_model.key_at(index)
        if key is None:
            return
        self.sidebar.select_key(key)
        menu = QMenu(self)
        if key.kind.can_name:
            menu.addAction(self.act_name)
            menu.addAction(self.act_merge)
            menu.addAction(self.act_hide)
            menu.addSeparator()
        menu.addAction(self.act_review)
        menu.exec(self.sidebar.viewport().mapToGlobal(pos))

    def _grid_menu(self: MainWindow, pos: Any) -> None:
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
