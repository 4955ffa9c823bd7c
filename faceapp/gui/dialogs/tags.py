"""File menu: "Write Face Tags…" and "Export Photos of a Person…".

Both dialogs call the same engine functions as ``faceapp write-tags`` and
``faceapp export`` in a background job, and show the engine's report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from faceapp.gui import workers

# The engine (torch) is imported where it is used: the window opens without it.


def _people(lib: Any) -> list[tuple[int, str]]:
    return lib.conn.execute("SELECT id, name FROM people ORDER BY name COLLATE NOCASE").fetchall()


def _current_person(window: Any) -> int | None:
    key = getattr(window, "current_key", None)
    return key.id if key is not None and key.kind == "person" else None


class _JobDialog(QDialog):
    """A dialog that runs one engine call in the background and shows its report."""

    def __init__(self, title: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(520)
        self.layout_ = QVBoxLayout(self)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.result = QPlainTextEdit()
        self.result.setReadOnly(True)
        self.result.setVisible(False)
        self.result.setMinimumHeight(140)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.job: workers.Job | None = None

    def finish_layout(self) -> None:
        self.layout_.addWidget(self.progress)
        self.layout_.addWidget(self.result)
        self.layout_.addWidget(self.buttons)

    def run(self, fn, on_finished) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.set_running(True)

        def progress(value: object) -> None:
            done, total = value
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(done)

        def failed(exc: BaseException) -> None:
            self.show_text(f"Failed: {exc}")

        self.job = workers.run_in_background(
            fn,
            name=self.windowTitle(),
            on_progress=progress,
            on_finished=on_finished,
            on_failed=failed,
        )
        self.job.signals.done.connect(lambda: self.set_running(False))

    def set_running(self, running: bool) -> None:
        self.buttons.setEnabled(not running)

    def show_text(self, text: str) -> None:
        self.progress.setVisible(False)
        self.result.setVisible(True)
        self.result.setPlainText(text)

    def reject(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
            return
        super().reject()


class WriteTagsDialog(_JobDialog):
    """Write XMP face tags for all people or the chosen ones (sidecars by default)."""

    def __init__(self, lib: Any, selected: int | None, parent: QWidget | None = None) -> None:
        super().__init__("Write Face Tags", parent)
        self.lib = lib
        intro = QLabel(
            "Writes the names you confirmed as face regions (MWG and Microsoft People Tags,"
            " with the names as keywords) that digiKam, Lightroom, Windows and other"
            " photo programs read. By default into .xmp files next to the photos; the"
            " photos themselves are not touched."
        )
        intro.setWordWrap(True)
        self.layout_.addWidget(intro)
        self.all_people = QRadioButton("All people")
        self.some_people = QRadioButton("Only the people checked below")
        group = QButtonGroup(self)
        group.addButton(self.all_people)
        group.addButton(self.some_people)
        self.list = QListWidget()
        for pid, name in _people(lib):
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, pid)
            item.setCheckState(
                Qt.CheckState.Checked if pid == selected else Qt.CheckState.Unchecked
            )
            self.list.addItem(item)
        (self.some_people if selected is not None else self.all_people).setChecked(True)
        self.list.setEnabled(selected is not None)
        self.some_people.toggled.connect(self.list.setEnabled)
        self.embed = QCheckBox(
            "Write into the JPEG files themselves (other formats get .xmp files)"
        )
        for w in (self.all_people, self.some_people, self.list, self.embed):
            self.layout_.addWidget(w)
        self.preview = QPushButton("Preview")
        self.write = QPushButton("Write")
        self.write.setDefault(True)
        self.buttons.addButton(self.preview, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.write, QDialogButtonBox.ButtonRole.AcceptRole)
        self.preview.clicked.connect(lambda: self.start(dry_run=True))
        self.write.clicked.connect(lambda: self.start(dry_run=False))
        self.finish_layout()

    def chosen(self) -> list[int] | None:
        if self.all_people.isChecked():
            return None
        return [
            self.list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def start(self, *, dry_run: bool) -> None:
        ids, embed, lib = self.chosen(), self.embed.isChecked(), self.lib
        if ids == []:
            self.show_text("Check at least one person, or choose All people.")
            return

        def work(job: workers.Job) -> Any:
            from faceapp.engine import tag_write

            return tag_write.write_tags(
                lib,
                person_ids=ids,
                embed=embed,
                dry_run=dry_run,
                progress=lambda d, t: job.report((d, t)),
                cancel=job.is_cancelled,
            )

        self.run(work, lambda report: self.show_report(report, dry_run))

    def show_report(self, report: Any, dry_run: bool) -> None:
        verb = "would be written" if dry_run else "written"
        lines = [
            f"{report.photos} photos: {report.written} {verb}, {report.skipped} up to date"
            f" or skipped, {len(report.errors)} problems"
            + (" (stopped)" if report.cancelled else "")
        ]
        lines += [f"{p}: {r}" for p, r in report.errors]
        lines += [f"{c['path']} → {c['target']}: {', '.join(c['names'])}" for c in report.changes]
        self.show_text("\n".join(lines))

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        for w in (self.preview, self.write, self.embed, self.list):
            w.setEnabled(not running)


class ExportDialog(_JobDialog):
    """Copy (or link) every photo of one person into a folder."""

    def __init__(self, lib: Any, selected: int | None, parent: QWidget | None = None) -> None:
        super().__init__("Export Photos of a Person", parent)
        self.lib = lib
        self.person = QComboBox()
        for pid, name in _people(lib):
            self.person.addItem(name, pid)
            if pid == selected:
                self.person.setCurrentIndex(self.person.count() - 1)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("Folder to export to")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self.browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.link = QCheckBox("Link to the photos instead of copying them")
        self.layout_.addWidget(QLabel("Person:"))
        self.layout_.addWidget(self.person)
        self.layout_.addLayout(row)
        self.layout_.addWidget(self.link)
        self.go = QPushButton("Export")
        self.go.setDefault(True)
        self.buttons.addButton(self.go, QDialogButtonBox.ButtonRole.AcceptRole)
        self.go.clicked.connect(self.start)
        self.finish_layout()

    def browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to Folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def start(self) -> None:
        if self.person.currentIndex() < 0 or not self.folder.text().strip():
            self.show_text("Choose a person and a folder.")
            return
        lib, pid = self.lib, self.person.currentData()
        target = Path(self.folder.text().strip())
        mode = "link" if self.link.isChecked() else "copy"

        def work(job: workers.Job) -> Any:
            from faceapp.engine import export

            return export.export_person(lib, pid, target, mode, lambda d, t: job.report((d, t)))

        def done(report: Any) -> None:
            lines = [f"{report.exported} of {report.photos} photos exported to {target}"]
            self.show_text("\n".join(lines + [f"{p}: {r}" for p, r in report.errors]))

        self.run(work, done)

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.go.setEnabled(not running)


class ConflictsDialog(QDialog):
    """Face tags in the photos that disagree with the user's names (never applied)."""

    def __init__(self, lib: Any, _selected: int | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        from faceapp.engine import face_tags  # no torch: reads the library only

        self.setWindowTitle("Face Tag Conflicts")
        self.setMinimumSize(620, 320)
        self.lib, self._face_tags = lib, face_tags
        layout = QVBoxLayout(self)
        intro = QLabel(
            "These names in the photos' face tags disagree with names you gave; your"
            " names were kept. Rename or move the faces yourself where the tag is right."
        )
        intro.setWordWrap(True)
        self.list = QListWidget()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.forget = QPushButton("Forget These")
        buttons.addButton(self.forget, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.forget.clicked.connect(self.clear)
        for w in (intro, self.list, buttons):
            layout.addWidget(w)
        self.fill()

    def fill(self) -> None:
        self.list.clear()
        found = self._face_tags.conflicts(self.lib)
        for c in found:
            self.list.addItem(f"{c.photo}: the tag says {c.name} ({c.source}), but {c.reason}")
        if not found:
            self.list.addItem("No conflicts.")
        self.forget.setEnabled(bool(found))

    def clear(self) -> None:
        self._face_tags.clear_conflicts(self.lib)
        self.fill()


def open_dialog(window: Any, cls: type[QDialog]) -> None:
    """Open one of the dialogs for the window's library, the person it shows preselected."""
    lib = window.session.lib
    if lib is not None:
        cls(lib, _current_person(window), window).exec()
