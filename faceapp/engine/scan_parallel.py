"""Photo batches analysed on several threads at once, their results taken in order.

On CPU each network pass runs on one torch thread, and torch releases the GIL inside
its kernels, so two batches analysed at once keep two cores busy where one pass
split over two torch threads does not: on the 12 MP set on 2 cores, 1.8x the photos
per second of one batch at a time against 1.25x for two torch threads
(bench/throughput.py). The results come back in the order the batches went in, so
the one library writer stores them as a sequential scan would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from faceapp.engine.scan_decode import Decoded

T = TypeVar("T")


class AnalysisPool(Generic[T]):
    """Runs ``analyze`` on up to ``workers`` batches at once (analyzer thread-safe:
    the networks keep no state between calls)."""

    def __init__(self, analyze: Callable[[list[Decoded]], T], workers: int) -> None:
        self._analyze = analyze
        self._workers = max(1, workers)
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="faceapp-analyze")
        self._running: deque[tuple[int, Future[T]]] = deque()

    @property
    def full(self) -> bool:
        """Take a result before putting another batch? One batch more than the
        workers waits its turn, so a worker done before the oldest batch goes on."""
        return len(self._running) > self._workers

    def pixels(self) -> int:
        """Decoded pixels held by the batches in flight (they count against the
        decode stream's prefetch limit)."""
        return sum(pixels for pixels, _ in self._running)

    def put(self, batch: list[Decoded]) -> None:
        self._running.append(
            (sum(d.pixels for d in batch), self._executor.submit(self._analyze, batch))
        )

    def take(self) -> T:
        """The oldest batch's result (waits for it)."""
        return self._running.popleft()[1].result()

    def drain(self) -> Iterator[T]:
        """The results of every batch in flight, oldest first."""
        while self._running:
            yield self.take()

    def close(self) -> None:
        """Stop: batches not started are dropped, running ones finish."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._running.clear()

    def __enter__(self) -> AnalysisPool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
