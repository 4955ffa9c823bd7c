"""A failed job's traceback goes to the log file, and the error message offers it."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from faceapp.gui import workers
from faceapp.gui.dialogs import error as error_mod
from faceapp.logsetup import log_file, setup_logging


def _fail_a_job(qtbot) -> None:
    def work(job: workers.Job) -> None:
        raise RuntimeError("decoder exploded")

    failed: list[BaseException] = []
    job = workers.run_in_background(work, name="scan", on_failed=failed.append)
    qtbot.waitUntil(lambda: bool(failed), timeout=10_000)
    assert job.finished_ok is False


def test_failed_job_traceback_is_logged_and_offered(qtbot, monkeypatch):
    path = setup_logging()
    assert path == log_file()
    _fail_a_job(qtbot)
    logged = path.read_text()
    assert "job 'scan' failed: decoder exploded" in logged
    assert "Traceback (most recent call last)" in logged
    assert "RuntimeError: decoder exploded" in logged

    opened = []
    monkeypatch.setattr(error_mod.QDesktopServices, "openUrl", opened.append)
    box = error_mod.error_box(None, "Scan failed", "decoder exploded")
    qtbot.addWidget(box)
    assert "RuntimeError: decoder exploded" in box.detailedText()
    box.show()
    (open_log,) = [b for b in box.buttons() if b.text() == "Open Log"]
    open_log.click()
    assert [url.toLocalFile() for url in opened] == [str(path)]
    assert box.isVisible()  # opening the log keeps the message up

    later = error_mod.error_box(None, "Move Faces", "Name a person first")
    qtbot.addWidget(later)
    assert later.detailedText() == ""  # a traceback is offered once, with its own error


def test_main_window_error_message_has_the_details(qtbot):
    from faceapp.gui.main_window import MainWindow

    setup_logging()
    win = MainWindow(probe_weights=False)
    qtbot.addWidget(win)
    _fail_a_job(qtbot)
    win.show_error("Scan failed", "decoder exploded")
    (box,) = [b for b in win.findChildren(QMessageBox) if b.text() == "decoder exploded"]
    assert "RuntimeError: decoder exploded" in box.detailedText()
    assert any(b.text() == "Open Log" for b in box.buttons())
