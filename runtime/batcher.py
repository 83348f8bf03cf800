"""A dynamic batcher: many callers submit single items, one thread computes them in batches.

A model scores a batch of 32 texts in little more than the time of one, so a server gathers
concurrent requests into batches. `Batcher` owns a bounded queue and one named dispatcher
thread that calls `process`, one batch at a time, always on that thread. An optional
`prepare` stage turns a batch's items into what `process` takes, on the same thread: work
that costs less per item done a batch at once (tokenizing: one call for the batch, on
every core, instead of one per caller, each holding its caller's thread) is done there.

The policy is work-conserving, as Triton's dynamic batcher and TEI's are: the model never
idles while a request waits. A request that finds the dispatcher idle is dispatched at once,
alone; while `process` runs, new requests accumulate in the queue; when it returns, the
dispatcher takes everything queued, up to `max_batch_size`. Batches therefore grow with the
load by themselves: one client pays no batching delay, and a backlog leaves in full batches.
Waiting for a batch to fill (`max_wait_s`, default 0) only helps throughput at light load,
and costs every lone request that wait, so it is opt-in: with it, the dispatcher keeps
collecting for up to `max_wait_s` after the first request of a batch was enqueued.

Answering is pipelined off the model's path: under load the dispatcher hands each computed
batch to a second thread, the deliverer, which resolves the futures (waking callers and
event loops, tens of microseconds each) while the dispatcher already forms and computes the
next batch. When nothing is queued there is no next batch to start, so the dispatcher
resolves the futures itself and a lone request pays one thread hop less.

Every request carries a `concurrent.futures.Future` that is resolved exactly once: with its
own result, with the exception `process` raised for its batch, or cancelled. A full queue
pushes back on callers (`OverloadedError`) instead of growing without bound, and `close()`
answers everything already accepted unless told to cancel it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

from .checks import require_int, require_seconds
from .errors import BatcherClosedError, BatcherError, OverloadedError

__all__ = ["BatcherConfig", "BatchRecord", "Batcher"]  # and `Timed`, what timed=True answers

_logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatcherConfig:
    """How large batches may grow, how long they wait to fill, and how much may queue.

    Durations (`*_s`) are in seconds, as everywhere in the library; `vigil serve` takes
    milliseconds for the one a user tunes in that range (--max-wait-ms).

    Attributes:
        max_batch_size: Most requests handed to one `process` call.
        max_wait_s: Opt-in delay: how long after the first request of a batch was enqueued
            the dispatcher keeps waiting for more. 0 (the default) is work-conserving: it
            takes what is queued and runs; requests already queued are always taken.
        queue_size: Most requests accepted but not yet dispatched.
        submit_timeout_s: How long `submit` waits for room in a full queue by default.
    """

    max_batch_size: int = 64
    max_wait_s: float = 0.0
    queue_size: int = 4096
    submit_timeout_s: float = 0.0

    def __post_init__(self) -> None:
        require_int("max_batch_size", self.max_batch_size, 1)
        require_seconds("max_wait_s", self.max_wait_s)
        require_int("queue_size", self.queue_size, 1)
        require_seconds("submit_timeout_s", self.submit_timeout_s)


@dataclass(frozen=True)
class BatchRecord:
    """What one batch cost, handed to the observer so that metrics stay outside the batcher.

    Attributes:
        size: Requests actually computed; cancelled ones are not counted.
        queue_wait_s: Per computed request, dispatch time minus enqueue time (monotonic).
        compute_s: Wall time of the `process` call.
        error: What `prepare` or `process` raised (or the length mismatch), None on success.
        work: What the batcher's `weigh` said the prepared batch weighs (e.g. tokens), else 0.
        prepare_s: Wall time of the `prepare` call, 0 without one.
    """

    size: int
    queue_wait_s: tuple[float, ...]
    compute_s: float
    error: BaseException | None
    work: int = 0
    prepare_s: float = 0.0


@dataclass(frozen=True)
class Timed(Generic[R]):
    """A result with what it cost, for `submit(..., timed=True)` (e.g. timing headers).

    Attributes:
        result: What `process` returned for the item.
        queue_s: From being enqueued to its batch being dispatched.
        compute_s: Wall time of its batch's `process` call.
        prepare_s: Wall time of its batch's `prepare` call, 0 without one.
    """

    result: R
    queue_s: float
    compute_s: float
    prepare_s: float = 0.0


@dataclass(frozen=True)
class _Request(Generic[T, R]):
    """One submitted item and the future that answers it."""

    item: T
    future: Future[R]
    timed: bool = False
    enqueued_at: float = field(default_factory=time.monotonic)


class Batcher(Generic[T, R]):
    """Gathers items submitted from any thread into batches for one `process` callable.

    Args:
        process: Maps a batch (the list of items, or what `prepare` made of it) to a
            sequence of results, one per item. Always called on the dispatcher thread, one
            batch at a time.
        config: Batch and queue limits.
        observer: Called on the dispatcher thread with a `BatchRecord` after every batch
            that computed at least one request; its exceptions are logged and ignored.
        name: Name of the dispatcher thread, to find it in dumps and profiles; the
            deliverer thread is named NAME-deliver.
        prepare: Maps a batch's items to what `process` takes, on the dispatcher thread
            just before it; None hands `process` the items themselves.
        weigh: Maps a batch as `process` takes it to the work it holds (e.g. real tokens),
            reported as `BatchRecord.work`; None reports 0.

    Use it as a context manager, or call `close()`: both threads live until then.
    """

    def __init__(
        self,
        process: Callable[[Any], Sequence[R]],
        config: BatcherConfig = BatcherConfig(),
        *,
        observer: Callable[[BatchRecord], None] | None = None,
        name: str = "vigil-batcher",
        prepare: Callable[[list[T]], Any] | None = None,
        weigh: Callable[[Any], int] | None = None,
    ) -> None:
        if not callable(process):
            raise TypeError(f"process must be callable, got {process!r}")
        if prepare is not None and not callable(prepare):
            raise TypeError(f"prepare must be callable or None, got {prepare!r}")
        if not isinstance(config, BatcherConfig):
            raise TypeError(f"config must be a BatcherConfig, got {config!r}")
        self._process = process
        self._prepare = prepare
        self._config = config
        self._observer = observer
        self._weigh = weigh
        self._name = name
        self._pending: deque[_Request[T, R]] = deque()
        self._closed = False
        # Two conditions over one lock, as in queue.Queue: the dispatcher waits for work,
        # submitters wait for room, and each side wakes only the other.
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        # Unbounded, yet bounded in practice: it only ever holds accepted requests.
        self._answers: SimpleQueue[_Answer[T, R] | None] = SimpleQueue()
        self._deliverer = threading.Thread(target=self._deliver_forever, name=f"{name}-deliver", daemon=True)
        self._thread = threading.Thread(target=self._dispatch_forever, name=name, daemon=True)
        self._deliverer.start()
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

    def submit(self, item: T, *, timeout: float | None = None, timed: bool = False) -> Future[R]:
        """Queue one item and return the future of its result.

        Args:
            item: Handed to `process` inside some batch.
            timeout: Seconds to wait for room while the queue is full; None means
                `config.submit_timeout_s`.
            timed: Resolve the future with a `Timed` (result, queue and compute time).

        Raises:
            OverloadedError: The queue stayed full for the whole timeout.
            BatcherClosedError: The batcher was closed before the item was queued.
        """
        future: Future[R] = Future()
        self._enqueue(_Request(item, future, timed), self._submit_wait(timeout))
        return future

    async def submit_async(self, item: T, *, timeout: float | None = None, timed: bool = False) -> R:
        """Queue one item and await its result; cancelling the awaiting task cancels it.

        With no wait for room (the default) the item is queued on the event loop's thread;
        a longer wait runs in a worker thread so that the loop keeps serving meanwhile.
        TIMED as in `submit`.

        Raises:
            OverloadedError: The queue stayed full for the whole timeout.
            BatcherClosedError: The batcher was closed before the item was queued.
        """
        wait_s = self._submit_wait(timeout)
        request: _Request[T, R] = _Request(item, Future(), timed)
        try:
            if wait_s == 0:
                self._enqueue(request, wait_s)
            else:
                await asyncio.to_thread(self._enqueue, request, wait_s)
            return await asyncio.wrap_future(request.future)
        except asyncio.CancelledError:
            # The worker thread may still queue the request after we are gone; a cancelled
            # future makes the dispatcher drop it before compute.
            request.future.cancel()
            raise

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop accepting items; by default answer every accepted one first.

        Safe to call more than once, and from `process`, the observer or a future's
        callback (it then does not wait for its own thread).

        Args:
            wait: Block until every accepted request is answered and both threads exited.
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
        # On the dispatcher, join nothing: the deliverer stops only after it does.
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()
            if threading.current_thread() is not self._deliverer:
                self._deliverer.join()

    def __enter__(self) -> Batcher[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _submit_wait(self, timeout: float | None) -> float:
        if timeout is None:
            return self._config.submit_timeout_s
        return require_seconds("timeout", timeout)

    def _enqueue(self, request: _Request[T, R], wait_s: float) -> None:
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
            self._pending.append(replace(request, enqueued_at=time.monotonic()))
            self._not_empty.notify()

    def _dispatch_forever(self) -> None:
        """The dispatcher thread: batch, compute, hand over, repeat until closed and drained."""
        try:
            while (batch := self._next_batch()) is not None:
                self._run_batch(batch)
        finally:
            self._answers.put(None)  # the deliverer stops after the answers before it

    def _has_work(self) -> bool:
        return bool(self._pending) or self._closed

    def _next_batch(self) -> list[_Request[T, R]] | None:
        """Block for a first request, take what is queued (waiting up to `max_wait_s` after
        the first for more, when that opt-in delay is set); None once closed and drained.

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
                if not self._pending and config.max_wait_s > 0:
                    self._not_empty.wait_for(self._has_work, timeout=deadline - time.monotonic())
                if not self._pending:
                    break  # nothing queued (and the deadline passed, or closing)
                batch.append(self._pending.popleft())
            self._not_full.notify(len(batch))
        return batch

    def _run_batch(self, batch: list[_Request[T, R]]) -> None:
        """Compute the requests not cancelled, hand their answers over, report the batch."""
        dispatched_at = time.monotonic()
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = prepared_at = time.perf_counter()
        items = [r.item for r in live]
        prepared: Any = None  # stays None if `prepare` fails: there is nothing to weigh
        try:
            prepared = items if self._prepare is None else self._prepare(items)
            prepared_at = time.perf_counter()
            results: Sequence[R] | BaseException = self._process(prepared)
            if len(results) != len(live):
                raise BatcherError(
                    f"process returned {len(results)} results for a batch of {len(live)} items"
                )
        except BaseException as exc:  # noqa: BLE001 - the thread must outlive any batch
            results = exc
        compute_s = time.perf_counter() - prepared_at
        prepare_s = prepared_at - started
        queue_wait_s = tuple(dispatched_at - r.enqueued_at for r in live)
        answer = _Answer(live, results, queue_wait_s, compute_s, prepare_s)
        if self._pending or not self._answers.empty():  # a read without the lock: a hint
            self._answers.put(answer)  # the next batch is waiting: deliver off this thread
        else:
            answer.deliver()
        self._observe(
            BatchRecord(
                size=len(live),
                queue_wait_s=queue_wait_s,
                compute_s=compute_s,
                error=results if isinstance(results, BaseException) else None,
                work=self._weight(prepared),
                prepare_s=prepare_s,
            )
        )

    def _weight(self, prepared: Any) -> int:
        """The batch's work; 0 where no `weigh` was given or `prepare` failed."""
        if self._weigh is None or prepared is None:
            return 0
        try:
            return self._weigh(prepared)
        except Exception:  # noqa: BLE001 - a broken metric must not stop serving
            _logger.exception("%s weigh failed", self._name)
            return 0

    def _deliver_forever(self) -> None:
        """The deliverer thread: resolve each batch's futures, in batch order, until told to stop."""
        while (answer := self._answers.get()) is not None:
            answer.deliver()

    def _observe(self, record: BatchRecord) -> None:
        """Hand the record to the observer; a broken metrics hook must not stop serving."""
        if self._observer is None:
            return
        try:
            self._observer(record)
        except BaseException:  # noqa: BLE001 - the thread must outlive any observer
            _logger.exception("%s observer failed on %r", self._name, record)


@dataclass(frozen=True)
class _Answer(Generic[T, R]):
    """One computed batch on its way from the dispatcher to the deliverer."""

    requests: list[_Request[T, R]]
    results: Sequence[R] | BaseException
    queue_wait_s: tuple[float, ...]
    compute_s: float
    prepare_s: float

    def deliver(self) -> None:
        """Resolve every future exactly once: its own result, or the batch's exception."""
        if isinstance(self.results, BaseException):
            for request in self.requests:
                request.future.set_exception(self.results)
            return
        for request, result, wait_s in zip(self.requests, self.results, self.queue_wait_s):
            value = Timed(result, wait_s, self.compute_s, self.prepare_s) if request.timed else result
            request.future.set_result(value)  # type: ignore[arg-type]
