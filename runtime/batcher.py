"""A dynamic batcher: many callers submit single items, one thread computes them in batches.

A model scores a batch of 32 texts in little more than the time of one, so a server gathers
concurrent requests into batches. `Batcher` owns a bounded queue and a named dispatcher
thread that calls `process`, one batch at a time, always on that thread; with
`dispatchers=N` (a model with N replicas, e.g. two GPU sessions), N dispatcher threads share
the queue, so up to N batches are in `process` at once. An optional `prepare` stage turns
items into what `process` takes, a batch at a time: work that costs less per item done for
many at once (tokenizing: one call for the batch, on every core, instead of one per caller)
is done there, on the dispatcher just before `process`.

The policy is work-conserving, as Triton's dynamic batcher and TEI's are: the model never
idles while a request waits. A request that finds a dispatcher idle is dispatched at once,
alone; while `process` runs on every dispatcher, new requests accumulate in the queue; when
one returns, its dispatcher takes everything queued, up to `max_batch_size`. Batches
therefore grow with the load by themselves: one client pays no batching delay, and a
backlog leaves in full batches.
Waiting for a batch to fill (`max_wait_s`, default 0) only helps throughput at light load,
and costs every lone request that wait, so it is opt-in: with it, the dispatcher keeps
collecting for up to `max_wait_s` after the first request of a batch was enqueued.

With `prepare_ahead`, for a model that computes off the host (a GPU), a third thread, the
preparer, prepares what queues while `process` runs (on every dispatcher: an idle one takes
new requests itself), so the next batch's host work overlaps this batch's compute. Only the
preparation runs ahead: batches are still formed when the model frees up, from everything
queued, so they stay as full as without it, and a request cancelled before its batch starts
still costs no compute. A lone request finds
the dispatcher idle and is prepared by it, with no extra thread hop.

Answering is pipelined off the model's path: under load the dispatcher hands each computed
batch to a second thread, the deliverer, which resolves the futures (waking callers and
event loops, tens of microseconds each) while the dispatcher already forms and computes the
next batch. When nothing is queued there is no next batch to start, so the dispatcher
resolves the futures itself and a lone request pays one thread hop less.

With `group` (a model that runs each group of items apart anyway, as the CPU runs each
sequence bucket of a batch), a batch holds one group: once its requests are prepared, the
dispatcher runs the group of the oldest, and puts the others back at the head of the queue,
prepared and still cancellable. They run next, joined by whatever of their group queued
meanwhile. A batch of mixed groups would otherwise run its groups one after the other and
answer none of them before the last, while requests arriving meanwhile wait for all of it;
here every run is a batch that new arrivals can join, so runs grow fuller and their answers
leave sooner, and the model still never idles while a request waits. Requests put back may
hold the queue over `queue_size` by at most one batch (submitters then wait for room).

Every request carries a `concurrent.futures.Future` that is resolved exactly once: with its
own result, with the exception `process` raised for its batch (or `prepare` for its
call), or cancelled. A full queue pushes back on callers (`OverloadedError`) instead of
growing without bound, and `close()` answers everything already accepted unless told to
cancel it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from itertools import islice
from concurrent.futures import Future
from dataclasses import dataclass
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
        queue_size: Most requests accepted but not yet dispatched (requests that a batch of
            one `group` puts back may exceed it by one batch).
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
        size: Requests dispatched in the batch (to `prepare` or `process`); cancelled ones
            are not counted.
        queue_wait_s: Per computed request, dispatch time minus enqueue time (monotonic).
        compute_s: Wall time of the `process` call.
        error: What `process` raised (or the length mismatch), else what `prepare` raised
            for some of the batch's items; None on success.
        work: What the batcher's `weigh` said the computed items weigh (e.g. tokens), else 0.
        prepare_s: Wall time the dispatcher spent in `prepare` for this batch, on the
            model's path; items prepared ahead cost it nothing.
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
        prepare_s: Wall time of the `prepare` call that prepared it, 0 without one.
    """

    result: R
    queue_s: float
    compute_s: float
    prepare_s: float = 0.0


_UNPREPARED = object()  # `_Request.prepared` before any prepare call took the item
_PREPARING = object()  # ... while the preparer's call holds it


@dataclass(frozen=True)
class _Failed:
    """What `prepare` raised, in place of the prepared items of the call that raised it."""

    error: BaseException


@dataclass(eq=False)
class _Request(Generic[T, R]):
    """One submitted item, the future that answers it, and what `prepare` made of it.

    `prepared` and `prepare_s` are written by whichever thread prepares the item (the
    dispatcher, or the preparer while the item is marked `_PREPARING`), once.
    """

    item: T
    future: Future[R]
    timed: bool = False
    enqueued_at: float = 0.0
    prepared: Any = _UNPREPARED
    prepare_s: float = 0.0


class Batcher(Generic[T, R]):
    """Gathers items submitted from any thread into batches for one `process` callable.

    Args:
        process: Maps a batch (a list of items, or of what `prepare` made of them) to a
            sequence of results, one per item. Always called on a dispatcher thread, one
            batch at a time on each.
        config: Batch and queue limits.
        observer: Called on the dispatcher thread with a `BatchRecord` after every batch
            that computed at least one request; its exceptions are logged and ignored.
        name: Name of the dispatcher thread, to find it in dumps and profiles; further
            dispatchers are NAME-2, NAME-3..., the deliverer thread is NAME-deliver.
        prepare: Maps a list of items to what `process` takes, one prepared item per
            item, in order; None hands `process` the items themselves. If it raises, the
            items of that call fail with its exception, and the rest of their batch runs.
        prepare_ahead: Prepare what queues while `process` runs, on a third thread (see
            above); worth it where `process` waits on a device, not where it computes on
            the cores `prepare` would use. `prepare` must then be thread-safe: the
            dispatcher and the preparer may call it at the same time.
        weigh: Maps a batch as `process` takes it to the work it holds (e.g. real tokens),
            reported as `BatchRecord.work`; None reports 0.
        dispatchers: How many batches may be in `process` at once, each on a dispatcher
            thread of its own: one per replica of the model, so that one replica computes
            while the host feeds another. With more than one, `process`, `prepare` and the
            observer must be thread-safe.
        group: Maps a prepared item to its group (e.g. its sequence bucket): a batch then
            holds items of one group only (see above). None batches items whatever they are.

    Use it as a context manager, or call `close()`: its threads live until then.
    """

    def __init__(
        self,
        process: Callable[[Any], Sequence[R]],
        config: BatcherConfig = BatcherConfig(),
        *,
        observer: Callable[[BatchRecord], None] | None = None,
        name: str = "vigil-batcher",
        prepare: Callable[[list[T]], Sequence[Any]] | None = None,
        prepare_ahead: bool = False,
        weigh: Callable[[list[Any]], int] | None = None,
        dispatchers: int = 1,
        group: Callable[[Any], Hashable] | None = None,
    ) -> None:
        if not callable(process):
            raise TypeError(f"process must be callable, got {process!r}")
        if prepare is not None and not callable(prepare):
            raise TypeError(f"prepare must be callable or None, got {prepare!r}")
        if group is not None and not callable(group):
            raise TypeError(f"group must be callable or None, got {group!r}")
        if prepare_ahead and prepare is None:
            raise ValueError("prepare_ahead needs a prepare callable")
        if not isinstance(config, BatcherConfig):
            raise TypeError(f"config must be a BatcherConfig, got {config!r}")
        self._process = process
        self._prepare = prepare
        self._config = config
        self._observer = observer
        self._weigh = weigh
        self._group = group
        self._name = name
        self._pending: deque[_Request[T, R]] = deque()
        self._ahead = 0  # requests at the head of `_pending` already prepared or preparing
        self._busy = 0  # dispatchers between taking a batch and answering it
        self._closed = False
        self._cancelling = False  # close(cancel_pending=True) was called
        # Conditions over one lock, as in queue.Queue: the dispatcher waits for work,
        # submitters wait for room, the preparer for work while the dispatcher is busy, and
        # the dispatcher for a preparer's call that holds part of its batch.
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._to_prepare = threading.Condition(self._lock)
        self._prepared = threading.Condition(self._lock)
        # Unbounded, yet bounded in practice: it only ever holds accepted requests.
        self._answers: SimpleQueue[_Answer[T, R] | None] = SimpleQueue()
        self._deliverer = threading.Thread(target=self._deliver_forever, name=f"{name}-deliver", daemon=True)
        self._dispatchers = tuple(
            threading.Thread(target=self._dispatch_forever, name=name if i == 1 else f"{name}-{i}", daemon=True)
            for i in range(1, require_int("dispatchers", dispatchers, 1) + 1)
        )
        self._preparer = (
            threading.Thread(target=self._prepare_ahead_forever, name=f"{name}-prepare", daemon=True)
            if prepare_ahead
            else None
        )
        for thread in (self._deliverer, *self._dispatchers, self._preparer):
            if thread is not None:
                thread.start()

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
            wait: Block until every accepted request is answered and the threads exited.
            cancel_pending: Cancel the requests still queued instead of computing them;
                a batch already handed to `process` still completes.
        """
        with self._lock:
            self._closed = True
            dropped = list(self._pending) if cancel_pending else []
            if cancel_pending:
                self._cancelling = True
                self._pending.clear()
                self._ahead = 0
            # Closing is the sentinel: a dispatcher stops once it sees it with an empty
            # queue, the preparer stops (the dispatchers prepare what is left), and
            # submitters blocked on a full queue give up.
            self._not_empty.notify_all()
            self._not_full.notify_all()
            self._to_prepare.notify_all()
        for request in dropped:
            request.future.cancel()  # outside the lock: this runs the future's callbacks
        # On a dispatcher, join nothing: the deliverer stops only after they all do.
        current = threading.current_thread()
        if wait and current not in self._dispatchers:
            for thread in (*self._dispatchers, self._deliverer, self._preparer):
                if thread is not None and current is not thread:
                    thread.join()

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
            request.enqueued_at = time.monotonic()
            self._pending.append(request)
            self._not_empty.notify()
            if self._preparer is not None and self._all_busy():
                self._to_prepare.notify()

    def _dispatch_forever(self) -> None:
        """A dispatcher thread: batch, compute, hand over, repeat until closed and drained."""
        try:
            while (batch := self._next_batch()) is not None:
                try:
                    self._run_batch(batch)
                finally:
                    with self._lock:
                        self._busy -= 1
        finally:
            self._answers.put(None)  # the deliverer stops after every dispatcher sent this

    def _has_work(self) -> bool:
        return bool(self._pending) or self._closed

    def _all_busy(self) -> bool:
        """Whether every dispatcher holds a batch, so that what queues now has to wait."""
        return self._busy == len(self._dispatchers)

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
            self._ahead = max(0, self._ahead - len(batch))
            self._busy += 1
            self._not_full.notify(len(batch))
            if self._pending and self._preparer is not None:
                self._to_prepare.notify()
        return batch

    def _run_batch(self, batch: list[_Request[T, R]]) -> None:
        """Compute the requests not cancelled, hand their answers over, report the batch."""
        dispatched_at = time.monotonic()
        if self._preparer is not None:
            with self._prepared:  # a call of the preparer may hold some of them
                self._prepared.wait_for(lambda: all(r.prepared is not _PREPARING for r in batch))
        waiting = [r for r in batch if not r.future.cancelled()]
        started = time.perf_counter()
        self._prepare_now([r for r in waiting if r.prepared is _UNPREPARED])
        prepare_s = time.perf_counter() - started
        now, later = self._one_group(waiting)
        self._put_back(later)
        live = [r for r in now if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        failed = [r for r in live if isinstance(r.prepared, _Failed)]
        ready = [r for r in live if not isinstance(r.prepared, _Failed)]
        prepare_error = failed[0].prepared.error if failed else None
        results, compute_s = self._compute([r.prepared for r in ready]) if ready else ([], 0.0)
        computed = not isinstance(results, BaseException)
        if failed:
            self._hand_over(_Answer(failed, prepare_error, dispatched_at, compute_s))
        if ready:
            self._hand_over(_Answer(ready, results, dispatched_at, compute_s))
        if self._observer is None:
            return  # nobody reads the record: build none
        self._observe(
            BatchRecord(
                size=len(live),
                queue_wait_s=tuple(dispatched_at - r.enqueued_at for r in live),
                compute_s=compute_s,
                error=prepare_error if computed else results,  # type: ignore[arg-type]
                work=self._weight([r.prepared for r in ready]) if ready and computed else 0,
                prepare_s=prepare_s,
            )
        )

    def _one_group(self, requests: list[_Request[T, R]]) -> tuple[list[_Request[T, R]], list[_Request[T, R]]]:
        """REQUESTS, prepared, split into those to answer now (the oldest one's group, and
        any whose prepare failed) and those of other groups, to put back; without `group`,
        all now."""
        ready = [r for r in requests if not isinstance(r.prepared, _Failed)]
        if self._group is None or len(ready) < 2:
            return requests, []
        try:
            keys = [self._group(r.prepared) for r in ready]
        except Exception:  # noqa: BLE001 - a broken grouping must not stop serving
            _logger.exception("%s group failed; the batch runs as one", self._name)
            return requests, []
        later = {r for r, key in zip(ready, keys) if key != keys[0]}
        return [r for r in requests if r not in later], [r for r in ready if r in later]

    def _put_back(self, requests: list[_Request[T, R]]) -> None:
        """Return prepared REQUESTS to the head of the queue, in order, to run next; after
        `close(cancel_pending=True)` cancel them instead, as the rest of the queue was."""
        if not requests:
            return
        with self._lock:
            cancel = self._cancelling
            if not cancel:
                self._pending.extendleft(reversed(requests))
                self._ahead += len(requests)
                self._not_empty.notify()
        if cancel:
            for request in requests:
                request.future.cancel()  # outside the lock: this runs the future's callbacks

    def _compute(self, prepared: list[Any]) -> tuple[Sequence[R] | BaseException, float]:
        """`process` on a batch: its results, or what it raised; and its wall time."""
        started = time.perf_counter()
        try:
            results: Sequence[R] | BaseException = self._process(prepared)
            if len(results) != len(prepared):
                raise BatcherError(
                    f"process returned {len(results)} results for a batch of {len(prepared)} items"
                )
        except BaseException as exc:  # noqa: BLE001 - the thread must outlive any batch
            results = exc
        return results, time.perf_counter() - started

    def _hand_over(self, answer: _Answer[T, R]) -> None:
        """Deliver ANSWER off this thread if a next batch waits for it, else here."""
        if self._pending or not self._answers.empty():  # a read without the lock: a hint
            self._answers.put(answer)  # the next batch is waiting: deliver off this thread
        else:
            answer.deliver()

    def _prepare_now(self, requests: list[_Request[T, R]]) -> None:
        """Prepare REQUESTS in one `prepare` call, on this thread; a failure marks them all."""
        if not requests:
            return
        if self._prepare is None:
            for request in requests:
                request.prepared = request.item
            return
        started = time.perf_counter()
        try:
            prepared: Sequence[Any] = self._prepare([r.item for r in requests])
            if len(prepared) != len(requests):
                raise BatcherError(f"prepare returned {len(prepared)} items for {len(requests)}")
        except BaseException as exc:  # noqa: BLE001 - the thread must outlive any batch
            prepared = [_Failed(exc)] * len(requests)
        prepare_s = time.perf_counter() - started
        for request, value in zip(requests, prepared):
            request.prepare_s = prepare_s
            request.prepared = value

    def _prepare_ahead_forever(self) -> None:
        """The preparer thread: while the dispatcher is busy, prepare what is queued, in
        queue order, a batch's worth at a time, until closed."""
        while (requests := self._next_to_prepare()) is not None:
            self._prepare_now(requests)
            with self._prepared:
                self._prepared.notify()

    def _next_to_prepare(self) -> list[_Request[T, R]] | None:
        """Mark the next unprepared requests as preparing, once every dispatcher is busy and
        some are queued; None once closed."""
        with self._to_prepare:
            self._to_prepare.wait_for(lambda: self._closed or (self._all_busy() and len(self._pending) > self._ahead))
            if self._closed:
                return None
            start = self._ahead
            requests = list(islice(self._pending, start, start + self._config.max_batch_size))
            for request in requests:
                request.prepared = _PREPARING
            self._ahead += len(requests)
        return requests

    def _weight(self, prepared: list[Any]) -> int:
        """The batch's work; 0 where no `weigh` was given."""
        if self._weigh is None:
            return 0
        try:
            return self._weigh(prepared)
        except Exception:  # noqa: BLE001 - a broken metric must not stop serving
            _logger.exception("%s weigh failed", self._name)
            return 0

    def _deliver_forever(self) -> None:
        """The deliverer thread: resolve each batch's futures, in hand-over order, until every
        dispatcher has stopped (one that stops early must not cut off another's answers)."""
        running = len(self._dispatchers)
        while running:
            answer = self._answers.get()
            if answer is None:
                running -= 1
            else:
                answer.deliver()

    def _observe(self, record: BatchRecord) -> None:
        """Hand the record to the observer; a broken metrics hook must not stop serving."""
        try:
            self._observer(record)
        except BaseException:  # noqa: BLE001 - the thread must outlive any observer
            _logger.exception("%s observer failed on %r", self._name, record)


@dataclass(frozen=True)
class _Answer(Generic[T, R]):
    """Answers for some requests of a batch, on their way from the dispatcher to the deliverer."""

    requests: list[_Request[T, R]]
    results: Sequence[R] | BaseException
    dispatched_at: float
    compute_s: float

    def deliver(self) -> None:
        """Resolve every future exactly once: its own result, or the batch's exception."""
        if isinstance(self.results, BaseException):
            for request in self.requests:
                request.future.set_exception(self.results)
            return
        for request, result in zip(self.requests, self.results):
            if request.timed:
                result = Timed(result, self.dispatched_at - request.enqueued_at, self.compute_s, request.prepare_s)  # type: ignore[assignment]
            request.future.set_result(result)
