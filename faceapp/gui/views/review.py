"""The review queue: "Cluster 7 looks like Anna" and "Is this Anna?" (likely / unsure),
most uncertain first, answered with Y / N / arrow keys; "Accept all likely" in one step."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPainter
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui.delegates import rounded_image
from faceapp.gui.resources import icon
from faceapp.gui.thumbnails import ThumbnailCache, decode_thumbnail
from faceapp.gui.views.header import page_with_header


class FaceImage(QWidget):
    """A rounded face crop of a fixed size (the image may arrive later)."""

    def __init__(self, size: int, circle: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(size, size)
        self.image: QImage | None = None
        self.circle = circle

    def set_image(self, image: QImage | None) -> None:
        self.image = image
        self.update()

    def paintEvent(self, event: object) -> None:
        p = QPainter(self)
        rounded_image(p, QRectF(self.rect()), self.image, 14, circle=self.circle)
        p.end()


def percent(p: float) -> str:
    """A confidence as a user reads it: never a certain-looking "100%" or "0%"."""
    if p >= 0.995:
        return "over 99%"
    if p < 0.005:
        return "under 1%"
    return f"{p:.0%}"


def is_cluster_item(item: Any) -> bool:
    """A "Cluster 7 looks like Anna" question (else one face's "Is this Anna?")."""
    return hasattr(item, "cluster_id")


class ReviewView(QWidget):
    """Cluster suggestions first, then faces, most uncertain first; "likely" or "unsure"."""

    answered = Signal(object, bool)  # suggestion (face or cluster), accepted
    acceptLikelyRequested = Signal()
    nameRequested = Signal(int)  # face id: "someone else…"
    backRequested = Signal()

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.thumbs = thumbnails
        thumbnails.ready.connect(self._on_thumbs)
        self.suggestions: list[Any] = []
        self.position = 0
        self.loaded = False
        self.lib: Any = None
        self.examples_for: dict[int, list[int]] = {}
        self.example_source = None  # callable(person_id) -> list[int]
        self.cluster_face = None  # callable(cluster_id) -> a face id to show

        layout, hrow = page_with_header(self)
        titles = QVBoxLayout()
        titles.setSpacing(2)
        title = QLabel("Review suggestions")
        title.setObjectName("groupTitle")
        self.subtitle = QLabel()
        self.subtitle.setObjectName("groupSubtitle")
        titles.addWidget(title)
        titles.addWidget(self.subtitle)
        back = QPushButton(icon("back"), "Back to Faces")
        back.clicked.connect(self.backRequested)
        self.accept_likely = QPushButton(icon("yes"), "Accept All Likely")
        self.accept_likely.setToolTip("Confirm every “likely” face at once (one undo step)")
        self.accept_likely.clicked.connect(self.acceptLikelyRequested)
        hrow.addLayout(titles, 1)
        hrow.addWidget(self.accept_likely)
        hrow.addWidget(back)

        self.stack = QStackedLayout()
        # The question page.
        page = QWidget()
        col = QVBoxLayout(page)
        col.setContentsMargins(24, 24, 24, 24)
        col.addStretch(1)
        faces = QHBoxLayout()
        faces.addStretch(1)
        self.face = FaceImage(200)
        self.face.setToolTip("The face to check")
        faces.addWidget(self.face)
        faces.addSpacing(36)
        right = QVBoxLayout()
        right.setSpacing(10)
        self.question = QLabel()
        self.question.setObjectName("reviewQuestion")
        self.question.setWordWrap(True)  # a long name wraps instead of widening the window
        self.verdict = QLabel()
        self.verdict.setObjectName("reviewLabel")
        self.detail = QLabel()
        self.detail.setObjectName("muted")
        known = QLabel("Known faces of this person:")
        known.setObjectName("muted")
        self.examples_row = QHBoxLayout()
        self.examples_row.setSpacing(8)
        self.examples = [FaceImage(64) for _ in range(5)]
        for e in self.examples:
            self.examples_row.addWidget(e)
        self.examples_row.addStretch(1)
        buttons = QHBoxLayout()
        self.yes = QPushButton(icon("yes-white"), "Yes  (Y)")
        self.yes.setProperty("primary", True)
        self.no = QPushButton(icon("no"), "No  (N)")
        self.skip = QPushButton(icon("next"), "Skip  (→)")
        self.other = QPushButton(icon("name"), "Someone Else…")
        self.other.setToolTip("Name this face as another person, or a new one")
        for b in (self.yes, self.no, self.skip, self.other):
            b.setMinimumHeight(34)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.yes.clicked.connect(lambda: self.answer(True))
        self.no.clicked.connect(lambda: self.answer(False))
        self.skip.clicked.connect(lambda: self.move(1))
        self.other.clicked.connect(self._someone_else)
        right.addWidget(self.question)
        right.addWidget(self.verdict)
        right.addWidget(self.detail)
        right.addSpacing(6)
        right.addWidget(known)
        right.addLayout(self.examples_row)
        right.addSpacing(12)
        right.addLayout(buttons)
        answer_side = QWidget()
        answer_side.setLayout(right)
        answer_side.setMaximumWidth(620)
        faces.addWidget(answer_side, 1)
        faces.addStretch(1)
        col.addLayout(faces)
        col.addSpacing(28)
        self.counter = QLabel()
        self.counter.setObjectName("muted")
        self.counter.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel("Y = yes, it is   ·   N = no, it is not   ·   ← / → = previous / next")
        hint.setObjectName("reviewHint")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(self.counter)
        col.addWidget(hint)
        col.addStretch(2)
        self.stack.addWidget(page)
        # The empty page.
        empty = QLabel(
            "Nothing to review right now.\n\nSuggestions appear when unsorted faces look "
            "like someone you have named. Name a few clusters, then come back."
        )
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty.setWordWrap(True)
        empty.setObjectName("muted")
        empty.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.stack.addWidget(empty)
        layout.addLayout(self.stack, 1)
        self.set_suggestions([])

    # -- content --------------------------------------------------------------------------

    def set_suggestions(self, suggestions: list[Any], keep_position: bool = True) -> None:
        self.loaded = True
        self.suggestions = list(suggestions)
        if not keep_position:
            self.position = 0
        self.position = max(0, min(self.position, len(self.suggestions) - 1))
        self._show()

    def loading(self) -> None:
        """Until the first suggestions arrive from the worker."""
        self.suggestions = []
        self.position = 0
        self.loaded = False
        self.subtitle.setText("Looking for faces to check…")
        self.stack.setCurrentIndex(1)

    def current(self) -> Any | None:
        if 0 <= self.position < len(self.suggestions):
            return self.suggestions[self.position]
        return None

    def _show(self) -> None:
        n = len(self.suggestions)
        likely = sum(1 for s in self.suggestions if getattr(s, "label", "") == "likely")
        self.accept_likely.setText(f"Accept All Likely ({likely})")
        self.accept_likely.setEnabled(likely > 0)
        self.subtitle.setText(
            f"{n} to check  ·  most uncertain first  ·  {likely} likely" if n else "All caught up"
        )
        s = self.current()
        if s is None:
            self.stack.setCurrentIndex(1)
            return
        self.stack.setCurrentIndex(0)
        name = getattr(s, "person_name", None) or f"person {s.person_id}"
        face_id = s.face_id if not is_cluster_item(s) else None
        if is_cluster_item(s):
            self.question.setText(f"{s.text}: merge?")
            self.verdict.setText(f"Yes: the cluster becomes {name}. No is remembered.")
            self.verdict.setProperty("label", "cluster")
            self.detail.setText(
                f"confidence {percent(s.confidence)}  ·  {s.count} faces in the cluster"
            )
            if self.cluster_face is not None:
                face_id = self.cluster_face(s.cluster_id)
        else:
            self.question.setText(f"Is this {name}?")
            self.verdict.setText("Likely" if s.label == "likely" else "Unsure")
            self.verdict.setProperty("label", s.label)
            self.detail.setText(f"confidence {percent(s.confidence)}  ·  distance {s.distance:.3f}")
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)
        self.other.setVisible(not is_cluster_item(s))
        self.counter.setText(f"{self.position + 1} of {n}")
        image = None
        if self.lib is not None and face_id is not None:
            try:
                image = decode_thumbnail(self.lib.face_crop(face_id), 200, 14)
            except Exception:
                image = None
        self.face.set_image(image)
        examples = self.examples_for.get(s.person_id)
        if examples is None and self.example_source is not None:
            try:
                examples = list(self.example_source(s.person_id))[:5]
            except Exception:
                examples = []
            self.examples_for[s.person_id] = examples
        examples = examples or []
        for i, widget in enumerate(self.examples):
            widget.setVisible(i < len(examples))
            widget.set_image(self.thumbs.get(examples[i]) if i < len(examples) else None)

    def _on_thumbs(self, ids: list[int]) -> None:
        s = self.current()
        if s is None:
            return
        examples = self.examples_for.get(s.person_id) or []
        if set(ids) & set(examples):
            for i, fid in enumerate(examples[: len(self.examples)]):
                self.examples[i].set_image(self.thumbs.peek(fid))

    def reset_examples(self) -> None:
        self.examples_for.clear()

    # -- actions --------------------------------------------------------------------------

    def answer(self, accept: bool) -> None:
        s = self.current()
        if s is not None:
            self.answered.emit(s, accept)

    def _someone_else(self) -> None:
        s = self.current()
        if s is not None and not is_cluster_item(s):
            self.nameRequested.emit(s.face_id)

    def move(self, step: int) -> None:
        if self.suggestions:
            self.position = (self.position + step) % len(self.suggestions)
            self._show()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Y:
            self.answer(True)
        elif key == Qt.Key.Key_N:
            self.answer(False)
        elif key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_Space):
            self.move(1)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Up):
            self.move(-1)
        elif key == Qt.Key.Key_Escape:
            self.backRequested.emit()
        else:
            super().keyPressEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(720, 480)
