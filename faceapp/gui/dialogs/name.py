"""Name a cluster, rename a person, name faces, or pick a person by name (with completion)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from faceapp.engine import birthdays
from faceapp.gui.thumbnails import ThumbnailCache
from faceapp.gui.views.review import FaceImage


class NameDialog(QDialog):
    """One line edit; existing names complete, so typing "An" offers "Anna".

    ``avatar``: the face shown beside it, read from ``thumbnails`` (when the
    thumbnail is not decoded yet, it appears as soon as it is)."""

    def __init__(
        self,
        title: str,
        prompt: str,
        *,
        current: str = "",
        names: list[str] | None = None,
        avatar: int | None = None,
        thumbnails: ThumbnailCache | None = None,
        ok_text: str = "Save",
        require_existing: bool = False,
        new_note: str = "",
        apart: list[QImage | None] | None = None,
        checking: bool = False,
        birth_date: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.require_existing = require_existing
        self.new_note = new_note  # shown for a name nobody has yet ("{}" is the name)
        self.setWindowTitle(title)
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 18, 18, 14)
        layout.setSpacing(12)
        row = QHBoxLayout()
        row.setSpacing(14)
        self.face = FaceImage(64, circle=True)
        self.avatar = avatar
        if avatar is not None and thumbnails is not None:
            self.face.set_image(thumbnails.get(avatar))
            if self.face.image is None:
                thumbnails.ready.connect(self._thumbnails_ready)
            self.thumbnails = thumbnails
        row.addWidget(self.face, 0, Qt.AlignmentFlag.AlignTop)
        col = QVBoxLayout()
        label = QLabel(prompt)
        label.setWordWrap(True)
        self.edit = QLineEdit(current)
        self.edit.setPlaceholderText("Name")
        self.edit.selectAll()
        self.names = sorted(set(names or []), key=str.lower)
        if self.names:
            completer = QCompleter(self.names, self)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            self.edit.setCompleter(completer)
        self.note = QLabel()
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        col.addWidget(label)
        col.addWidget(self.edit)
        col.addWidget(self.note)
        # Faces that do not fit the group: shown apart, left out of the naming. While a
        # worker still looks for them (checking), a line says so.
        self.apart_box = QWidget()
        box = QVBoxLayout(self.apart_box)
        box.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.apart_box)
        self.apart_count = 0
        self.checking = checking
        if checking:
            wait = QLabel("Checking that every face fits this group…")
            wait.setObjectName("muted")
            box.addWidget(wait)
        self.apart_box.setVisible(checking)
        if apart and not checking:
            self.set_apart(apart)
        self.birth: QLineEdit | None = None
        if birth_date is not None:  # a person's details: the birth date, optional
            self.birth = QLineEdit(birth_date)
            self.birth.setPlaceholderText("Birth date, e.g. 2010-05-03 (optional)")
            self.birth.setToolTip(
                "Faces in photos taken before this date are never suggested for this person; "
                "their photos show the age at the time."
            )
            col.addWidget(QLabel("Born:"))
            col.addWidget(self.birth)
        row.addLayout(col, 1)
        layout.addLayout(row)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.edit.textChanged.connect(self._update)
        if self.birth is not None:
            self.birth.textChanged.connect(self._update)
        self.note.setMinimumHeight(2 * self.note.fontMetrics().lineSpacing())
        self._update()
        self.adjustSize()

    def _thumbnails_ready(self, ids: list[int]) -> None:
        if self.avatar in ids and self.face.image is None:
            self.face.set_image(self.thumbnails.peek(self.avatar))

    def set_apart(self, apart: list[QImage | None]) -> None:
        """The check's answer: the faces that go to Review instead (none: nothing shown)."""
        layout = self.apart_box.layout()
        while layout.count():
            item = layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.checking = False
        self.apart_count = n = len(apart)
        if n:
            warn = QLabel(
                f"{n} {'face' if n == 1 else 'faces'} may not be the same person: "
                f"{'it goes' if n == 1 else 'they go'} to Review instead of being named."
            )
            warn.setObjectName("apartNote")
            warn.setWordWrap(True)
            layout.addWidget(warn)
            faces = QWidget()
            faces_row = QHBoxLayout(faces)
            faces_row.setContentsMargins(0, 0, 0, 0)
            faces_row.setSpacing(6)
            for image in apart[:8]:
                thumb = FaceImage(48)
                thumb.set_image(image)
                faces_row.addWidget(thumb)
            faces_row.addStretch(1)
            layout.addWidget(faces)
        self.apart_box.setVisible(n > 0)
        # grow to fit once the wrapped note knows its height (after this event)
        QTimer.singleShot(0, self._fit_height)

    def _fit_height(self) -> None:
        layout = self.layout()
        layout.activate()
        self.resize(self.width(), max(self.height(), layout.totalHeightForWidth(self.width())))

    def existing(self) -> str | None:
        """The existing name this text matches (case-insensitive), if any."""
        text = self.name().lower()
        return next((n for n in self.names if n.lower() == text), None)

    def _update(self) -> None:
        match = self.existing()
        ok = bool(match) if self.require_existing else bool(self.name())
        bad_date = self._bad_birth_date()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok and not bad_date)
        if bad_date:  # said here, while the dialog is open, not after it closed
            self.note.setText(bad_date)
        elif self.require_existing:
            self.note.setText("" if match or not self.name() else "No person has this name.")
        elif match:
            self.note.setText(f"“{match}” already exists: these faces will join that person.")
        else:
            self.note.setText(self.new_note.format(self.name()) if self.name() else "")

    def _bad_birth_date(self) -> str:
        """Why the birth date typed is not a date ("" when empty or fine)."""
        if not self.birth_date():
            return ""
        try:
            birthdays.parse_date(self.birth_date())
        except birthdays.BirthdayError:
            return "The birth date is not a date: type it as YYYY-MM-DD, e.g. 2010-05-03."
        return ""

    def birth_date(self) -> str:
        return self.birth.text().strip() if self.birth is not None else ""

    def name(self) -> str:
        return " ".join(self.edit.text().split())
