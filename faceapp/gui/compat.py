"""Work-arounds for defects of the Qt binding in use (checked at run time, not assumed).

PySide6-Essentials 6.12.0 (abi3 wheel) returns ``None``, ``True`` and ``False``
from C++ calls without taking a reference: every void call (``update()``,
``setText()``, ``QTimer.start()``), every ``Signal.emit()`` and every ``data()``
that answers None lowers the reference count of those singletons by one. On
Python 3.12+ they are immortal and nothing happens; on Python 3.11 the count
reaches zero after a few minutes of a busy GUI and the interpreter aborts with
"Fatal Python error: none_dealloc / bool_dealloc".

:func:`protect_singletons` measures whether the binding has this defect and, only
then and only before Python 3.12, gives the three singletons a huge reference
count, which is what immortality amounts to. The real fix is a binding without
the defect (or Python >= 3.12); see the project notes.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # more calls than a process will ever make
_done = False


def binding_leaks_singletons() -> bool:
    """True when void calls into Qt drop a reference to None (measured, 64 calls)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")
    return sys.getrefcount(None) <= before - 32


def protect_singletons() -> bool:
    """Make None/True/False effectively immortal if the binding needs it; idempotent.

    Returns True when the protection was applied (now or earlier).
    """
    global _done
    if _done:
        return True
    if sys.version_info >= (3, 12) or not binding_leaks_singletons():
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object.
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    _done = True
    return True
