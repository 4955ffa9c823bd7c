"""The binding defect guard: a long, busy session must not exhaust None/True/False."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from faceapp.gui import compat


class _Emitter(QObject):
    sig = Signal(object)


def test_many_void_calls_and_emits_do_not_abort(qtbot):
    assert compat.protect_singletons() in (True, False)  # idempotent, imported already
    emitter = _Emitter()
    emitter.sig.connect(lambda value: None)
    widget = QWidget()
    qtbot.addWidget(widget)
    for _ in range(100_000):  # several times what a 3.11 process survives unprotected
        widget.update()
        emitter.sig.emit(None)
    assert sys.getrefcount(None) > 0 and sys.getrefcount(True) > 0


def test_protection_only_where_needed():
    leaks = compat.binding_leaks_singletons()
    if sys.version_info >= (3, 12) or not leaks:
        assert not compat._done or leaks
    else:
        assert compat._done
