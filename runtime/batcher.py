"""A dynamic batcher: many callers submit single items, one thread computes them in batches.

A model scores a batch of 32 texts in little more than the time of one, so a server gathers
concurrent requests into batches. `Batcher` owns a bounded queue and one named dispatcher
thread. The dispatcher blocks for a first request, then drains more until the batch is full
or until `max_wait_s` after that first request was enqueued, and calls `process` on the
batch. `process` always runs on that one thread, because the GPU path captures CUDA graphs
and must replay them on the thread that captured them.

Every request carries a `concurrent.futures.Future` that is resolved exactly once: with its
own result, with the exception `process` raised for its batch, or cancelled. A full queue
pushes back on callers (`OverloadedError`) instead of growing without bound, and `close()`
answers everything already accepted unless told to cancel it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import BatcherClosedError, BatcherError, OverloadedError

__all__ = ["BatcherConfig", "BatchRecord", "Batcher"]

_logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _require_int(name: str, value: object, minimum: int) -> int:
    """Reject bools too: `True` is an int to Python but never a batch size to a user."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _require_seconds(name: str, value: object) -> float:
    """A finite duration >= 0; infinity is refused because threading waits overflow on it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class BatcherConfig:
    """How large batches may grow, how long they wait to fill, and how much may queue.

    Attributes:
        max_batch_size: Most requests handed to one `process` call.
        max_wait_s: How long after the first request of a batch was enqueued the dispatcher
            keeps waiting for more; requests already queued are taken without waiting.
        queue_size: Most requests accepted but not yet dispatched.
        submit_timeout_s: How long `submit` waits for room in a full queue by default.
    """

    max_batch_size: int = 64
    max_wait_s: float = 0.002
    queue_size: int = 4096
    submit_timeout_s: float = 0.0

    def __post_init__(self) -> None:
        _require_int("max_batch_size", self.max_batch_size, 1)
        _require_seconds("max_wait_s", self.max_wait_s)
        _require_int("queue_size", self.queue_size, 1)
        _require_seconds("submit_timeout_s", self.submit_timeout_s)


@dataclass(frozen=True)
class BatchRecord:
    """What one batch cost, handed to the observer so that metrics stay outside the batcher.

    Attributes:
        size: Requests actually computed; cancelled ones are not counted.
        queue_wait_s: Per computed request, dispatch time minus enqueue time (monotonic).
        compute_s: Wall time of the `process` call.
        error: What `process` raised (or the length mismatch), None on success.
    """

    size: int
    queue_wait_s: tuple[float, ...]
    compute_s: float
    error: BaseException | None


@dataclass(frozen=True)
class _Request(Generic[T, R]):
    """One submitted item and the future that answers it."""

    item: T
    future: Future[R]
    enqueued_at: float = field(default_factory=time.monotonic)


class Batcher(Generic[T, R]):
    """Gathers items submitted from any thread into batches for one `process` callable.

    Args:
        process: Maps a list of items to a sequence of results of the same length. Always
            called on the dispatcher thread, one batch at a time.
        config: Batch and queue limits.
        observer: Called on the dispatcher thread with a `BatchRecord` after every batch
            that computed at least one request; its exceptions are logged and ignored.
        name: Name of the dispatcher thread, to find it in dumps and profiles.

    Use it as a context manager, or call `close()`: the dispatcher thread lives until then.
    """

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R]],
        config: BatcherConfig = BatcherConfig(),
        *,
        observer: Callable[[BatchRecord], None] | None = None,
        name: str = "vigil-batcher",
    ) -> None:
        if not callable(process):
            raise TypeError(f"process must be callable, got {process!r}")
        if not isinstance(config, BatcherConfig):
            raise TypeError(f"config must be a BatcherConfig, got {config!r}")
        self._process = process
        self._config = config
        self._observer = observer
        self._name = name
        self._pending: deque[_Request[T, R]] = deque()
        self._closed = False
        # Two conditions over one lock, as in queue.Queue: the dispatcher waits for work,
        # submitters wait for room, and each side wakes only the other.
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._dispatch_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Requests accepted but not yet dispatched, for metrics."""
        with self._lock:
            return len(self._pending)

    @property
    def closed(self) -> bool:
        """Whether `close()` was called; a closed batcher may still be finishing its queue."""
        return self._closed

    def submit(self, item: T, *, timeout: float | None = None) -> Future[R]:
        """Queue one item and return the future of its result.

        Args:
            item: Handed to `process` inside some batch.
            timeout: Seconds to wait for room while the queue is full; None means
                `config.submit_timeout_s`.

        Raises:
            OverloadedError: The queue stayed full for the whole timeout.
            BatcherClosedError: The batcher was closed before the item was queued.
        """
        future: Future[R] = Future()
        self._enqueue(item, future, self._submit_wait(timeout))
        return future

    async def submit_async(self, item: T, *, timeout: float | None = None) -> R:
        """Queue one item and await its result; cancelling the awaiting task cancels it.

        With no wait for room (the default) the item is queued on the event loop's thread;
        a longer wait runs in a worker thread so that the loop keeps serving meanwhile.

        Raises:
            OverloadedError: The queue stayed full for the whole timeout.
            BatcherClosedError: The batcher was closed before the item was queued.
        """
        wait_s = self._submit_wait(timeout)
        future: Future[R] = Future()
        try:
            if wait_s == 0:
                self._enqueue(item, future, wait_s)
            else:
                await asyncio.to_thread(self._enqueue, item, future, wait_s)
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The worker thread may still queue the request after we are gone; a cancelled
            # future makes the dispatcher drop it before compute.
            future.cancel()
            raise

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop accepting items; by default answer every accepted one first.

        Safe to call more than once, and from `process` or the observer (it then does not
        wait for its own thread).

        Args:
            wait: Block until the dispatcher has answered what it will and exited.
            cancel_pending: Cancel the requests still queued instead of computing them;
                a batch already handed to `process` still completes.
        """
        with self._lock:
            self._closed = True
            dropped = list(self._pending) if cancel_pending else []
            if cancel_pending:
                self._pending.clear()
            # Closing is the sentinel: the dispatcher stops once it sees it with an empty
            # queue, and submitters blocked on a full queue give up.
            self._not_empty.notify_all()
            self._not_full.notify_all()
        for request in dropped:
            request.future.cancel()  # outside the lock: this runs the future's callbacks
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Batcher[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _submit_wait(self, timeout: float | None) -> float:
        if timeout is None:
            return self._config.submit_timeout_s
        return _require_seconds("timeout", timeout)

    def _enqueue(self, item: T, future: Future[R], wait_s: float) -> None:
        """Queue a request, waiting up to `wait_s` for room; its clock starts once queued."""
        queue_size = self._config.queue_size
        with self._not_full:
            has_room = self._not_full.wait_for(
                lambda: self._closed or len(self._pending) < queue_size, timeout=wait_s
            )
            if self._closed:
                raise BatcherClosedError(f"{self._name} is closed and accepts no more items")
            if not has_room:
                raise OverloadedError(
                    f"{self._name} queue is full ({queue_size} requests) and stayed full "
                    f"for the {wait_s:g}s submit timeout"
                )
            self._pending.append(_Request(item, future))
            self._not_empty.notify()

    def _dispatch_forever(self) -> None:
        """The dispatcher thread: batch, compute, repeat until closed and drained."""
        while (batch := self._next_batch()) is not None:
            self._run_batch(batch)

    def _has_work(self) -> bool:
        return bool(self._pending) or self._closed

    def _next_batch(self) -> list[_Request[T, R]] | None:
        """Block for a first request, then drain until full or its deadline; None at the end.

        Requests already queued are taken even past the deadline, so a backlog still forms
        full batches.
        """
        config = self._config  # read once, so one batch is formed under one set of limits
        with self._not_empty:
            self._not_empty.wait_for(self._has_work)
            if not self._pending:
                return None  # closed and drained
            first = self._pending.popleft()
            batch = [first]
            deadline = first.enqueued_at + config.max_wait_s
            while len(batch) < config.max_batch_size:
                self._not_empty.wait_for(self._has_work, timeout=deadline - time.monotonic())
                if not self._pending:
                    break  # deadline passed, or closing: no more items can come
                batch.append(self._pending.popleft())
            self._not_full.notify(len(batch))
        return batch

    def _run_batch(self, batch: list[_Request[T, R]]) -> None:
        """Compute the requests not cancelled, answer each one, and report the batch."""
        dispatched_at = time.monotonic()
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        try:
            results = self._process([r.item for r in live])
            if len(results) != len(live):
                raise BatcherError(
                    f"process returned {len(results)} results for a batch of {len(live)} items"
                )
        except BaseException as exc:  # noqa: BLE001 - the thread must outlive any batch
            error: BaseException | None = exc
            for request in live:
                request.future.set_exception(exc)
        else:
            error = None
            for request, result in zip(live, results):
                request.future.set_result(result)
        self._observe(
            BatchRecord(
                size=len(live),
                queue_wait_s=tuple(dispatched_at - r.enqueued_at for r in live),
                compute_s=time.perf_counter() - started,
                error=error,
            )
        )

    def _observe(self, record: BatchRecord) -> None:
        """Hand the record to the observer; a broken metrics hook must not stop serving."""
        if self._observer is None:
            return
        try:
            self._observer(record)
        except BaseException:  # noqa: BLE001 - the thread must outlive any observer
            _logger.exception("%s observer failed on %r", self._name, record)
