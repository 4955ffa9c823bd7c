"""The main window's actions, declared once, and when each one is enabled.

Each action is one :class:`ActionSpec` row: its text, shortcut, icon, the
window method it calls and a rule saying when it applies. The rules read a
:class:`Context` (is a library open, is a scan running, what kind of group is
selected and what that kind can do), as Picard's main window enables its
actions from the selected items' ``can_*`` answers. Menus and the toolbar list
actions by name, so nothing about an action is written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from faceapp.gui.groups import GroupKind
from faceapp.gui.resources import icon

if TYPE_CHECKING:
    from faceapp.gui.main_window import MainWindow

SK = QKeySequence.StandardKey


@dataclass(frozen=True)
class Context:
    """What the window shows now: the input of every action's rule."""

    has_lib: bool = False
    busy: bool = False
    scanning: bool = False
    kind: GroupKind | None = None  # the selected group's kind
    hidden: bool = False  # the selected person is hidden
    faces_selected: bool = False  # faces selected in the grid
    box_selected: bool = False  # a face box selected in the photo view
    photo_shown: bool = False


@dataclass(frozen=True)
class ActionSpec:
    name: str  # the window attribute is act_<name>
    text: str | Callable[[Context], str]
    slot: str  # the window method it calls
    shortcut: Any = None  # a StandardKey, a string, or a tuple of them
    icon: str | None = None
    tip: str | None = None
    icon_text: str | None = None
    enabled: Callable[[Context], bool] | None = None  # None: always enabled
    role: QAction.MenuRole | None = None
    scope: str = "window"  # "grid" / "photo": the shortcut works in that view only


def _lib(c: Context) -> bool:
    return c.has_lib


def _idle(c: Context) -> bool:
    return c.has_lib and not c.busy


def _can(what: str) -> Callable[[Context], bool]:
    return lambda c: c.has_lib and c.kind is not None and getattr(c.kind, what)


def _faces(c: Context) -> bool:
    return c.has_lib and c.faces_selected


def _nameable(c: Context) -> bool:
    """A group to name, or selected faces in Unknown (which has no name of its own)."""
    return _can("can_name")(c) or (c.kind is GroupKind.UNKNOWN and _faces(c))


ACTIONS: tuple[ActionSpec, ...] = (
    # File
    ActionSpec(
        "open",
        "&Open Photo Folder…",
        "open_folder_dialog",
        SK.Open,
        "open",
        "Open a folder of photos and find the faces in it",
        "Open",
    ),
    ActionSpec(
        "rescan",
        "&Rescan Folder",
        "rescan",
        "F5",
        "rescan",
        "Look for new or changed photos",
        "Rescan",
        _idle,
    ),
    ActionSpec(
        "cancel",
        "&Cancel Scan",
        "cancel_scan",
        None,
        "cancel",
        "Stop the scan",
        enabled=lambda c: c.scanning,
    ),
    ActionSpec(
        "write_tags",
        "Write Face &Tags…",
        "show_write_tags",
        tip="Write the confirmed names into XMP face tags other photo programs read",
        enabled=_lib,
    ),
    ActionSpec(
        "tag_conflicts",
        "Face Tag &Conflicts…",
        "show_tag_conflicts",
        tip="Names in the photos' face tags that disagree with yours (not applied)",
        enabled=_lib,
    ),
    ActionSpec(
        "export",
        "E&xport Photos of a Person…",
        "show_export",
        tip="Copy or link every photo of a person into a folder",
        enabled=_lib,
    ),
    ActionSpec(
        "problems",
        "&Problems…",
        "show_problems",
        None,
        "warning",
        "Files the scan could not use, with the reason; try them again",
        enabled=_lib,
    ),
    ActionSpec("close", "&Close Library", "close_library", SK.Close, enabled=_lib),
    ActionSpec("quit", "&Quit", "close", SK.Quit, role=QAction.MenuRole.QuitRole),
    # Edit
    ActionSpec("select_all", "Select &All Faces", "select_all_faces", SK.SelectAll, scope="grid"),
    ActionSpec(
        "settings",
        "&Settings…",
        "show_settings",
        (SK.Preferences, "Ctrl+,"),
        "settings",
        "Grouping, device, weights and library options",
        role=QAction.MenuRole.PreferencesRole,
    ),
    # View
    ActionSpec("back", "&Back to Faces", "show_grid", ("Esc", "Alt+Left"), "back"),
    ActionSpec("zoom_in", "&Larger Thumbnails", "zoom_in", SK.ZoomIn),
    ActionSpec("zoom_out", "&Smaller Thumbnails", "zoom_out", SK.ZoomOut),
    ActionSpec("sidebar", "Show &Sidebar", "toggle_sidebar", "Ctrl+Shift+S"),
    # People
    ActionSpec(
        "name",
        lambda c: "Re&name…" if c.kind is not None and c.kind.is_person else "&Name…",
        "name_current",
        "F2",
        "name",
        "Name this cluster or rename this person (in Unknown faces: the selected faces)",
        enabled=_nameable,
    ),
    ActionSpec(
        "edit_person",
        "&Edit Person…",
        "edit_person",
        "Ctrl+E",
        "name",
        "Name and birth date of this person",
        enabled=_can("can_edit_details"),
    ),
    ActionSpec(
        "hide",
        lambda c: "&Show" if c.hidden else "&Hide",
        "toggle_hidden",
        "Ctrl+H",
        "hidden",
        "Hide or show this person",
        enabled=_can("can_hide"),
    ),
    ActionSpec(
        "merge",
        "Merge &Into…",
        "merge_current_dialog",
        "Ctrl+Shift+M",
        "merge",
        enabled=_can("can_merge"),
    ),
    ActionSpec(
        "move",
        "&Name Faces / Move to Person…",
        "move_selected_dialog",
        "Ctrl+M",
        "person",
        "Give the selected faces a name: a new person or one you named before",
        enabled=_faces,
    ),
    ActionSpec(
        "reject",
        lambda c: "&" + (c.kind.reject_text if c.kind is not None else "Not This Person"),
        "reject_selected",
        SK.Delete,
        "reject",
        "Remove the selected faces from this group and remember it",
        enabled=lambda c: _faces(c) and c.kind is not None and c.kind.can_reject,
        scope="grid",
    ),
    ActionSpec(
        "reject_box",
        "Remove Face From Its &Group",
        "reject_box",
        SK.Delete,
        "reject",
        "The selected box's face leaves its person or cluster (remembered)",
        enabled=lambda c: c.has_lib and c.box_selected,
        scope="photo",
    ),
    ActionSpec(
        "cover",
        "Make &Cover Face",
        "make_cover",
        None,
        "person",
        "Show the selected face as this person's picture",
        enabled=lambda c: _can("can_set_cover")(c) and c.faces_selected,
    ),
    ActionSpec(
        "add_face",
        "&Add a Missed Face",
        "toggle_add_face",
        "Ctrl+Shift+A",
        "person",
        "Drag a box around a face the scan missed; it is added like a found face",
        enabled=lambda c: c.has_lib and c.photo_shown,
    ),
    ActionSpec(
        "prev_photo",
        "&Previous Photo",
        "previous_photo",
        ("Left", "PgUp"),
        "prev",
        enabled=lambda c: c.photo_shown,
        scope="photo",
    ),
    ActionSpec(
        "next_photo",
        "Ne&xt Photo",
        "next_photo",
        ("Right", "PgDown"),
        "next",
        enabled=lambda c: c.photo_shown,
        scope="photo",
    ),
    ActionSpec(
        "review",
        "&Review Suggestions",
        "show_review",
        "Ctrl+R",
        "review",
        "Answer “Is this …?” questions, most uncertain first",
        "Review",
        _lib,
    ),
    ActionSpec(
        "recluster",
        "Re&group Faces",
        "regroup",
        "Ctrl+Shift+G",
        tip="Group the unnamed faces again (names and confirmed faces stay)",
        enabled=_idle,
    ),
    # Tools
    ActionSpec(
        "verify",
        "&Verify Two Photos…",
        "show_verify",
        "Ctrl+Shift+V",
        "verify",
        "Are two photos the same person?",
        "Verify",
    ),
    ActionSpec(
        "finetune",
        "&Fine-tune Recognition…",
        "show_finetune",
        None,
        "finetune",
        "Teach the face embedder the people you confirmed",
        "Fine-tune",
        _idle,
    ),
    ActionSpec(
        "models",
        "&Model Versions…",
        "show_models",
        tip="List the recognition model versions; switch or remove one",
        enabled=_lib,
    ),
    ActionSpec("weights", "Choose &Weights File…", "choose_weights", None, "weights"),
    # Help
    ActionSpec("shortcuts", "&Keyboard Shortcuts", "show_shortcuts", "F1"),
    ActionSpec(
        "about",
        "&About Face Album",
        "show_about",
        None,
        "info",
        role=QAction.MenuRole.AboutRole,
    ),
    ActionSpec("about_qt", "About &Qt", "show_about_qt", role=QAction.MenuRole.AboutQtRole),
)

# Menus and the toolbar by action name; "-" is a separator, "@attr" a window attribute (undo).
MENUS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "&File",
        (
            *("open", "@recent", "rescan", "cancel", "problems", "-"),
            *("write_tags", "tag_conflicts", "export", "-", "close", "-", "quit"),
        ),
    ),
    ("&Edit", ("@act_undo", "@act_redo", "-", "select_all", "-", "settings")),
    (
        "&View",
        (
            "back",
            "prev_photo",
            "next_photo",
            "add_face",
            "-",
            "zoom_in",
            "zoom_out",
            "-",
            "sidebar",
        ),
    ),
    (
        "&People",
        (
            *("name", "edit_person", "hide", "merge", "cover", "-", "move", "reject"),
            *("reject_box", "-", "review", "recluster"),
        ),
    ),
    ("&Tools", ("verify", "finetune", "models", "-", "weights")),
    ("&Help", ("shortcuts", "-", "about", "about_qt")),
)
# In the toolbar, "~" is a stretching spacer.
TOOLBAR: tuple[str, ...] = (
    "open",
    "rescan",
    "-",
    "verify",
    "review",
    "finetune",
    "-",
    "@tb_undo",
    "@tb_redo",
    "~",
    "settings",
)


def key_sequences(shortcut: Any) -> list[QKeySequence]:
    """The key sequences of a shortcut spec, each once (a repeat makes Qt's shortcut ambiguous)."""
    items = shortcut if isinstance(shortcut, tuple) else (shortcut,)
    out: list[QKeySequence] = []
    for item in items:
        if isinstance(item, QKeySequence.StandardKey):
            seqs = QKeySequence.keyBindings(item)
        else:
            seqs = [QKeySequence(item)]
        for seq in seqs:
            if not seq.isEmpty() and seq not in out:
                out.append(seq)
    return out


def create_actions(window: MainWindow) -> dict[str, QAction]:
    """Make every declared action, connected to its window method."""
    actions: dict[str, QAction] = {}
    for spec in ACTIONS:
        text = spec.text(Context()) if callable(spec.text) else spec.text
        action = QAction(text, window)
        if spec.icon:
            action.setIcon(icon(spec.icon))
        if spec.shortcut is not None:
            action.setShortcuts(key_sequences(spec.shortcut))
        if spec.tip:
            action.setStatusTip(spec.tip)
            action.setToolTip(spec.tip)
        if spec.icon_text:
            action.setIconText(spec.icon_text)
        if spec.role is not None:
            action.setMenuRole(spec.role)
        action.triggered.connect(lambda _checked=False, s=spec.slot: getattr(window, s)())
        if spec.scope != "window":
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            view = window.grid if spec.scope == "grid" else window.photo_view
            view.addAction(action)
        else:
            window.addAction(action)
        actions[spec.name] = action
        setattr(window, f"act_{spec.name}", action)
    window.act_sidebar.setCheckable(True)
    window.act_sidebar.setChecked(True)
    window.act_add_face.setCheckable(True)
    return actions


def create_undo_actions(window: MainWindow) -> None:
    """Undo and redo are the engine's (the library's op log, shared by every process):
    their texts come from the session's undo status, never from a stack of our own."""
    window.act_undo = QAction(icon("undo"), "&Undo", window)
    window.act_undo.setShortcuts(key_sequences(SK.Undo))
    window.act_redo = QAction(icon("redo"), "&Redo", window)
    window.act_redo.setShortcuts(key_sequences((SK.Redo, "Ctrl+Shift+Z", "Ctrl+Y")))
    window.act_undo.triggered.connect(window.session.undo)
    window.act_redo.triggered.connect(window.session.redo)
    window.addAction(window.act_undo)
    window.addAction(window.act_redo)
    # Toolbar twins with short labels and no shortcuts of their own (one action per key).
    window.tb_undo = QAction(icon("undo"), "Undo", window)
    window.tb_redo = QAction(icon("redo"), "Redo", window)
    window.tb_undo.triggered.connect(window.session.undo)
    window.tb_redo.triggered.connect(window.session.redo)
    show_undo_status(window, None)


def show_undo_status(window: MainWindow, status: Any) -> None:
    """Menu texts, tooltips and enabled state from the library's undo state."""
    undo = getattr(status, "undo", None)
    redo = getattr(status, "redo", None)
    for act, tb, verb, what, keys in (
        (window.act_undo, window.tb_undo, "Undo", undo, "Ctrl+Z"),
        (window.act_redo, window.tb_redo, "Redo", redo, "Ctrl+Y"),
    ):
        act.setText(f"&{verb} {what}" if what else f"&{verb}")
        act.setEnabled(bool(what))
        tb.setEnabled(bool(what))
        tb.setToolTip(f"{verb} {what} ({keys})" if what else f"{verb} ({keys})")


def update_actions(actions: dict[str, QAction], context: Context) -> None:
    """Enable each action by its rule and give it the text that fits the selection."""
    by_name = {spec.name: spec for spec in ACTIONS}
    for name, action in actions.items():
        spec = by_name[name]
        if spec.enabled is not None:
            action.setEnabled(bool(spec.enabled(context)))
        if callable(spec.text):
            action.setText(spec.text(context))


# Qt's first key code of the media and launcher keys (Back, Open, Close, Exit, Zoom In…).
FIRST_MEDIA_KEY = Qt.Key.Key_Back.value


def keys_text(sequences: list[QKeySequence]) -> str:
    """ "Ctrl+O" for the help: the keys a keyboard has. A platform's standard bindings add
    media keys (Open, Close, Exit, Zoom In), which read like a second name of the action."""
    shown = []
    for seq in sequences:
        combo = seq[0]
        media = combo.key().value >= FIRST_MEDIA_KEY
        if media and combo.keyboardModifiers() == Qt.KeyboardModifier.NoModifier:
            continue
        shown.append(seq.toString(QKeySequence.SequenceFormat.NativeText))
    return " / ".join(shown)


def shortcut_rows() -> list[tuple[str, str]]:
    """(keys, what) for the Keyboard Shortcuts help, read from the declarations."""
    rows = []
    for spec in ACTIONS:
        if spec.shortcut is None:
            continue
        keys = keys_text(key_sequences(spec.shortcut))
        text = spec.text(Context()) if callable(spec.text) else spec.text
        rows.append((keys, text.replace("&", "").rstrip("…")))
    rows.append(("Ctrl+Z / Ctrl+Y", "Undo / redo"))
    return rows
