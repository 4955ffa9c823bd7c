"""The binding defect guard: a long, busy session must not exhaust None/True/False."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from faceapp.gui import compat


class _Emitter(QObject):
    sig = Signal(object)


def test_many_void_calls_and_emits_do_not_abort(qtbot):
    protected = compat.protect_singletons()  # imported already: a second call changes nothing
    assert compat.protect_singletons() == protected == compat._done
    before = sys.getrefcount(None)
    emitter = _Emitter()
    emitter.sig.connect(lambda value: None)
    widget = QWidget()
    qtbot.addWidget(widget)
    for _ in range(100_000):  # several times what a 3.11 process survives unprotected
        widget.update()
        emitter.sig.emit(None)
    after = sys.getrefcount(None)
    if protected:  # the headroom is (nearly) all left: the process would survive years of this
        assert after > 1 << 39
    else:  # a binding without the defect keeps None's count where it was
        assert after > before - 1_000, (before, after)


def test_protection_only_where_needed():
    needed = sys.version_info < (3, 12) and compat.binding_leaks_singletons()
    assert compat._done == needed
