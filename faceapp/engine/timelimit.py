"""Run one blocking call with a time limit.

A read from a stalled network share, a FIFO or a decoder made to spin by a crafted
file cannot be interrupted from Python. The call runs in a daemon thread; past the
limit the caller gets :class:`TimeLimitExceeded` and goes on, and the stuck thread,
which cannot keep the process from exiting, ends whenever its call returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class TimeLimitExceeded(Exception):
    """The call ran longer than its limit and was given up."""


def call_with_time_limit(fn: Callable[..., T], *args: object, limit: float, name: str = "") -> T:
    """``fn(*args)``, its exception re-raised here, or TimeLimitExceeded after ``limit`` s."""
    future: Future[T] = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the waiting thread
            future.set_exception(exc)

    threading.Thread(target=work, name=name or "time-limited", daemon=True).start()
    try:
        return future.result(timeout=limit)
    except FutureTimeout:
        raise TimeLimitExceeded(f"took longer than {limit:.0f} s") from None
