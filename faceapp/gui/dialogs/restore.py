"""When a library turns out damaged: offer its newest good backup, restore it, reopen.

Finding a good backup reads whole files and restoring copies one, so both run in
workers; the questions are asked on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

from faceapp.gui import workers
from faceapp.gui.dialogs.error import error_box
from faceapp.logsetup import take_recent_failure


def offer_restore(parent: QWidget, session: Any, library_path: Path, message: str) -> None:
    """Look for the newest backup that passes the full check, then ask to restore it.

    ``message`` says what happened in plain words; SQLite's own (the newest logged
    failure) go under "Show Details…"."""
    from faceapp.engine import backup

    details = take_recent_failure() or ""
    session.message.emit("The library is damaged; looking for a good backup…")
    workers.run_in_background(
        lambda _job: backup.newest_good(library_path),
        name="find-backup",
        on_finished=lambda found: _ask(parent, session, library_path, message, found, details),
        on_failed=lambda exc: _no_backup(parent, message, f"{details}\n{exc}".strip()),
    )


def _no_backup(parent: QWidget, message: str, details: str) -> None:
    box = error_box(
        parent,
        "Damaged Library",
        f"{message}\n\nThere is no good backup of this library to go back to; the file is"
        " left as it is. To start again, choose another library location in Edit > Settings…"
        " and open the photo folder: the faces are found again, and names written into the"
        " photos (File > Write Face Tags…) come back with them.",
        details,
    )
    box.open()


def _ask(
    parent: QWidget, session: Any, library_path: Path, message: str, found: Any, details: str
) -> None:
    if found is None:
        _no_backup(parent, message, details)
        return
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Damaged Library",
        f"{message}\n\nRestore the backup of {found.when}? Changes made after that time"
        " are not in it. The damaged file is kept next to the library.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        parent,
    )
    box.button(QMessageBox.StandardButton.Yes).setText("Restore Backup")
    box.button(QMessageBox.StandardButton.No).setText("Not Now")
    box.setDefaultButton(QMessageBox.StandardButton.Yes)
    box.setObjectName("restoreBackupBox")
    if details:
        box.setDetailedText(details)
    box.finished.connect(
        lambda result: (
            result == QMessageBox.StandardButton.Yes and _restore(session, library_path, found)
        )
    )
    box.open()


def _restore(session: Any, library_path: Path, found: Any) -> None:
    from faceapp.engine import backup

    def restored(_aside: Any) -> None:
        session.message.emit(f"Restored the backup of {found.when}.")
        session.open_library_file(library_path)

    workers.run_in_background(
        lambda _job: backup.restore(library_path, found),
        name="restore",
        on_finished=restored,
        on_failed=lambda exc: session.error.emit("Restore Backup", str(exc)),
    )
