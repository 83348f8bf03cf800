"""Tests for vigil.runtime.batcher.

Ordering is forced with Events (a `Gate` holds `process` inside a batch), never with sleeps,
and every wait has a generous timeout, so the tests hold on a loaded two-core CI machine.
Nothing here asserts that anything is fast.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future

import pytest
from helpers import wait_for

from vigil.runtime import batcher as batcher_module
from vigil.runtime.batcher import Batcher, BatcherConfig, BatchRecord
from vigil.runtime.errors import BatcherClosedError, BatcherError, ClosedError, OverloadedError

TIMEOUT = 10.0
_names = (f"test-batcher-{i}" for i in itertools.count())


def unique_name() -> str:
    """A fresh dispatcher thread name, so a leak check sees only its own test's thread."""
    return next(_names)


def double(xs: list[int]) -> list[int]:
    return [x * 2 for x in xs]


def thread_alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


class Gate:
    """A `process` that records each batch and its thread, and blocks until released.

    `entered` is set once the dispatcher is inside a call, so the test knows that batch is
    dispatched and that later submits stay queued until `release` is set.
    """

    def __init__(self, fn: Callable[[list[int]], Sequence[int]] = double) -> None:
        self.fn = fn
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[int]] = []
        self.threads: set[threading.Thread] = set()

    def __call__(self, items: list[int]) -> Sequence[int]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread())
        self.entered.set()
        assert self.release.wait(TIMEOUT), "gate never released"
        return self.fn(items)

    @property
    def seen(self) -> list[int]:
        return [x for batch in self.batches for x in batch]


def hold_first_batch(gate: Gate, batcher: Batcher[int, int]) -> Future[int]:
    """Submit one item and wait until `process` holds it, so the next submits queue up."""
    first = batcher.submit(0)
    assert gate.entered.wait(TIMEOUT)
    return first


def watch_enqueue(batcher: Batcher[int, int]) -> tuple[threading.Event, threading.Event]:
    """Events set when a submit enters the batcher's queueing step and when it has queued.

    A submit that waits for room does so inside that step, in a worker thread: once it is
    entered, the item can only be queued after room is made, whatever the scheduling.
    """
    entered, queued = threading.Event(), threading.Event()
    enqueue = batcher._enqueue

    def watched(*args: object) -> None:
        entered.set()
        enqueue(*args)
        queued.set()

    batcher._enqueue = watched  # type: ignore[method-assign]
    return entered, queued


# --- module surface and config --------------------------------------------------------


def test_all_lists_the_public_names() -> None:
    assert batcher_module.__all__ == ["BatcherConfig", "BatchRecord", "Batcher"]
    for name in batcher_module.__all__:
        assert hasattr(batcher_module, name)


def test_config_defaults_are_valid() -> None:
    config = BatcherConfig()
    assert (config.max_batch_size, config.max_wait_s) == (64, 0.0)  # work-conserving by default
    assert (config.queue_size, config.submit_timeout_s) == (4096, 0.0)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_batch_size", True),
        ("max_batch_size", 2.0),
        ("queue_size", "8"),
        ("queue_size", None),
        ("max_wait_s", False),
        ("max_wait_s", "0.1"),
        ("submit_timeout_s", None),
    ],
)
def test_config_rejects_wrong_types(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"^{field} .*got {value!r}"):
        BatcherConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_batch_size", 0),
        ("queue_size", -1),
        ("max_wait_s", -0.001),
        ("max_wait_s", float("inf")),
        ("submit_timeout_s", float("nan")),
    ],
)
def test_config_rejects_bad_ranges(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{field} .*got {value!r}"):
        BatcherConfig(**{field: value})


def test_config_accepts_int_seconds() -> None:
    assert BatcherConfig(max_wait_s=0, submit_timeout_s=1).submit_timeout_s == 1.0


def test_batcher_rejects_a_non_config() -> None:
    with pytest.raises(TypeError, match="got"):
        Batcher(double, {"max_batch_size": 4})  # type: ignore[arg-type]


def test_submit_rejects_a_negative_timeout() -> None:
    with Batcher(double, name=unique_name()) as batcher:
        with pytest.raises(ValueError, match="^timeout .*got -1"):
            batcher.submit(1, timeout=-1)


def test_config_accepts_its_smallest_values() -> None:
    config = BatcherConfig(max_batch_size=1, max_wait_s=0, queue_size=1, submit_timeout_s=0)
    assert (config.max_batch_size, config.queue_size) == (1, 1)


def test_a_batch_waits_up_to_max_wait_for_company() -> None:
    gate = Gate()
    gate.release.set()
    with Batcher(gate, BatcherConfig(max_batch_size=2, max_wait_s=30.0), name=unique_name()) as batcher:
        first = batcher.submit(1)
        wait_for(lambda: batcher.queue_depth == 0, "the dispatcher to take the first item", TIMEOUT)
        second = batcher.submit(2)  # arrives while the first waits for company
        assert (first.result(TIMEOUT), second.result(TIMEOUT)) == (2, 4)
    assert gate.batches == [[1, 2]]


def test_a_non_callable_process_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="^process must be callable, got 42$"):
        Batcher(42)  # type: ignore[arg-type]


def test_a_new_batcher_is_open_and_its_thread_has_the_default_name() -> None:
    gate = Gate()
    gate.release.set()
    with Batcher(gate) as batcher:
        assert batcher.closed is False
        assert batcher.submit(1).result(TIMEOUT) == 2
    assert [t.name for t in gate.threads] == ["vigil-batcher"]


# --- rule 1: one dispatcher thread, results checked against the batch -----------------


def test_process_always_runs_on_the_one_named_daemon_thread() -> None:
    name = unique_name()
    gate = Gate()
    gate.release.set()
    with Batcher(gate, BatcherConfig(max_batch_size=2), name=name) as batcher:
        for i in range(20):
            assert batcher.submit(i).result(TIMEOUT) == 2 * i
    assert len(gate.batches) > 1
    (thread,) = gate.threads
    assert thread.name == name
    assert thread.daemon
    assert thread is not threading.main_thread()


def test_length_mismatch_fails_the_whole_batch_naming_both_numbers() -> None:
    gate = Gate(lambda xs: [1] * (len(xs) + 1))
    with Batcher(gate, BatcherConfig(max_batch_size=8), name=unique_name()) as batcher:
        first = hold_first_batch(gate, batcher)
        rest = [batcher.submit(i) for i in (1, 2, 3)]
        gate.release.set()
        with pytest.raises(BatcherError, match="returned 2 results for a batch of 1"):
            first.result(TIMEOUT)
        for future in rest:
            with pytest.raises(BatcherError, match="returned 4 results for a batch of 3"):
                future.result(TIMEOUT)


# --- rule 2: the dispatch rule ----------------------------------------------------------


def test_dispatcher_waits_after_the_first_item_for_more() -> None:
    # A long max_wait_s: the second item must join the first, and a full batch is sent
    # at once rather than at the deadline (or close() would take 30 s).
    gate = Gate()
    gate.release.set()
    config = BatcherConfig(max_batch_size=2, max_wait_s=30.0)
    with Batcher(gate, config, name=unique_name()) as batcher:
        futures = [batcher.submit(1), batcher.submit(2)]
        assert [f.result(TIMEOUT) for f in futures] == [2, 4]
    assert gate.batches == [[1, 2]]


def test_close_does_not_wait_out_the_batch_deadline() -> None:
    gate = Gate()
    gate.release.set()
    batcher = Batcher(gate, BatcherConfig(max_batch_size=8, max_wait_s=30.0), name=unique_name())
    future = batcher.submit(21)
    batcher.close()
    assert future.result(0) == 42
    assert gate.batches == [[21]]


def test_backlog_forms_batches_never_larger_than_max_batch_size() -> None:
    gate = Gate()
    config = BatcherConfig(max_batch_size=4, max_wait_s=0)
    with Batcher(gate, config, name=unique_name()) as batcher:
        first = hold_first_batch(gate, batcher)
        futures = [batcher.submit(i) for i in range(1, 11)]
        assert batcher.queue_depth == 10
        gate.release.set()
        assert [f.result(TIMEOUT) for f in futures] == [2 * i for i in range(1, 11)]
        assert first.result(TIMEOUT) == 0
    assert gate.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert batcher.queue_depth == 0


# --- rule 3: cancelled requests cost no compute ------------------------------------------


def test_cancelled_request_never_reaches_process() -> None:
    gate = Gate()
    with Batcher(gate, name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        cancelled, kept = batcher.submit(1), batcher.submit(2)
        assert cancelled.cancel()
        gate.release.set()
        assert kept.result(TIMEOUT) == 4
    assert 1 not in gate.seen
    assert cancelled.cancelled()


# --- rule 4: a failing batch does not stop the dispatcher ---------------------------------


class Boom(Exception):
    pass


class Interrupt(BaseException):
    """Stands in for KeyboardInterrupt or SystemExit raised inside `process`."""


@pytest.mark.parametrize("error_type", [Boom, Interrupt])
def test_process_error_is_set_on_every_future_of_its_batch(error_type: type) -> None:
    def fail_on_13(xs: list[int]) -> list[int]:
        if 13 in xs:
            raise error_type("bad batch")
        return double(xs)

    gate = Gate(fail_on_13)
    with Batcher(gate, name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        doomed = [batcher.submit(12), batcher.submit(13)]
        gate.release.set()
        errors = []
        for future in doomed:
            with pytest.raises(error_type, match="bad batch") as info:
                future.result(TIMEOUT)
            errors.append(info.value)
        assert errors[0] is errors[1]
        assert [batcher.submit(i).result(TIMEOUT) for i in (5, 6)] == [10, 12]
    assert [12, 13] in gate.batches


# --- rule 5: backpressure ----------------------------------------------------------------


def test_full_queue_raises_overloaded_naming_size_and_timeout() -> None:
    gate = Gate()
    with Batcher(gate, BatcherConfig(queue_size=2), name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        queued = [batcher.submit(1), batcher.submit(2)]
        with pytest.raises(OverloadedError, match=r"\(2 requests\).*0s submit timeout"):
            batcher.submit(3)
        with pytest.raises(OverloadedError, match=r"0\.05s submit timeout"):
            batcher.submit(3, timeout=0.05)
        gate.release.set()
        assert [f.result(TIMEOUT) for f in queued] == [2, 4]
    assert 3 not in gate.seen


def test_config_submit_timeout_is_the_default_wait() -> None:
    gate = Gate()
    config = BatcherConfig(queue_size=1, submit_timeout_s=0.05)
    with Batcher(gate, config, name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        batcher.submit(1)
        with pytest.raises(OverloadedError, match=r"0\.05s submit timeout"):
            batcher.submit(2)
        gate.release.set()


def test_blocked_submit_gets_through_once_room_frees() -> None:
    gate = Gate()
    with Batcher(gate, BatcherConfig(queue_size=1), name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        batcher.submit(1)
        outcome: list[int] = []
        waiter = threading.Thread(
            target=lambda: outcome.append(batcher.submit(2, timeout=TIMEOUT).result(TIMEOUT))
        )
        waiter.start()
        gate.release.set()
        waiter.join(TIMEOUT)
        assert outcome == [4]


# --- rule 6: close --------------------------------------------------------------------------


def test_close_answers_every_accepted_request() -> None:
    name = unique_name()
    gate = Gate()
    batcher = Batcher(gate, BatcherConfig(max_batch_size=3), name=name)
    first = hold_first_batch(gate, batcher)
    queued = [batcher.submit(i) for i in range(1, 8)]
    batcher.close(wait=False)
    assert batcher.closed
    with pytest.raises(BatcherClosedError):
        batcher.submit(99)
    gate.release.set()
    batcher.close()
    assert first.result(0) == 0
    assert [f.result(0) for f in queued] == [2 * i for i in range(1, 8)]
    assert not thread_alive(name)
    assert 99 not in gate.seen


def test_close_with_cancel_pending_cancels_only_the_queue() -> None:
    name = unique_name()
    gate = Gate()
    batcher = Batcher(gate, name=name)
    first = hold_first_batch(gate, batcher)
    queued = [batcher.submit(i) for i in range(1, 4)]
    batcher.close(wait=False, cancel_pending=True)
    assert all(f.cancelled() for f in queued)
    assert batcher.queue_depth == 0
    gate.release.set()
    batcher.close()
    assert first.result(0) == 0
    assert gate.batches == [[0]]
    with pytest.raises(CancelledError):
        queued[0].result(0)
    assert not thread_alive(name)


def test_a_later_close_can_still_cancel_the_queue() -> None:
    gate = Gate()
    batcher = Batcher(gate, name=unique_name())
    hold_first_batch(gate, batcher)
    queued = batcher.submit(1)
    batcher.close(wait=False)
    batcher.close(wait=False, cancel_pending=True)
    gate.release.set()
    batcher.close()
    assert queued.cancelled()
    assert gate.batches == [[0]]


def test_close_is_idempotent_and_leaks_no_thread() -> None:
    name = unique_name()
    batcher = Batcher(double, name=name)
    assert thread_alive(name)
    assert not batcher.closed
    assert batcher.submit(4).result(TIMEOUT) == 8
    batcher.close()
    batcher.close()
    batcher.close(wait=False, cancel_pending=True)
    assert batcher.closed
    assert not thread_alive(name)


def test_context_manager_closes() -> None:
    name = unique_name()
    with Batcher(double, name=name) as batcher:
        future = batcher.submit(3)
    assert batcher.closed
    assert future.result(0) == 6
    assert not thread_alive(name)


def test_submit_after_close_raises_closed() -> None:
    batcher = Batcher(double, name=unique_name())
    batcher.close()
    with pytest.raises(BatcherClosedError, match="closed") as raised:
        batcher.submit(1)
    assert isinstance(raised.value, ClosedError) and isinstance(raised.value, RuntimeError)  # as a closed Classifier
    with pytest.raises(BatcherClosedError):
        asyncio.run(batcher.submit_async(1))


def test_submit_blocked_on_a_full_queue_is_released_by_close() -> None:
    gate = Gate()
    batcher = Batcher(gate, BatcherConfig(queue_size=1), name=unique_name())
    hold_first_batch(gate, batcher)
    batcher.submit(1)
    raised: list[BaseException] = []

    def blocked_submit() -> None:
        try:
            batcher.submit(2, timeout=TIMEOUT)
        except BaseException as exc:
            raised.append(exc)

    waiter = threading.Thread(target=blocked_submit)
    waiter.start()
    # Whether the waiter is already blocked or not yet, close() must make it give up
    # with BatcherClosedError well before its own 10 s timeout.
    batcher.close(wait=False)
    waiter.join(TIMEOUT)
    assert not waiter.is_alive()
    assert [type(e) for e in raised] == [BatcherClosedError]
    gate.release.set()
    batcher.close()


def test_close_from_the_observer_neither_deadlocks_nor_raises() -> None:
    name = unique_name()
    holder: list[Batcher[int, int]] = []
    raised: list[BaseException] = []  # the batcher only logs an observer's errors: keep them

    def close_on_record(record: BatchRecord) -> None:
        try:
            holder[0].close()  # wait=True, but it must not join its own thread
        except BaseException as exc:
            raised.append(exc)

    batcher = Batcher(double, observer=close_on_record, name=name)
    holder.append(batcher)
    assert batcher.submit(1).result(TIMEOUT) == 2
    wait_for(lambda: not thread_alive(name), "the dispatcher to exit", TIMEOUT)
    assert raised == []
    assert batcher.closed


def test_close_from_process_neither_deadlocks_nor_fails_the_batch() -> None:
    name = unique_name()
    holder: list[Batcher[int, int]] = []

    def close_then_double(xs: list[int]) -> list[int]:
        holder[0].close()  # an error here would become this batch's result
        return double(xs)

    batcher = Batcher(close_then_double, name=name)
    holder.append(batcher)
    assert batcher.submit(1).result(TIMEOUT) == 2
    wait_for(lambda: not thread_alive(name), "the dispatcher to exit", TIMEOUT)
    assert batcher.closed
    with pytest.raises(BatcherClosedError):
        batcher.submit(2)


# --- rule 7: submit_async ------------------------------------------------------------------


def test_submit_async_returns_results_and_errors() -> None:
    def fail_on_negative(xs: list[int]) -> list[int]:
        if any(x < 0 for x in xs):
            raise Boom("negative")
        return double(xs)

    async def main(batcher: Batcher[int, int]) -> None:
        assert await batcher.submit_async(5) == 10
        with pytest.raises(Boom, match="negative"):
            await batcher.submit_async(-1)

    with Batcher(fail_on_negative, BatcherConfig(max_wait_s=0), name=unique_name()) as batcher:
        asyncio.run(main(batcher))


def test_cancelling_the_awaiting_task_cancels_the_request() -> None:
    gate = Gate()

    async def main(batcher: Batcher[int, int]) -> None:
        task = asyncio.create_task(batcher.submit_async(1))
        while batcher.queue_depth == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.release.set()
        assert await batcher.submit_async(2) == 4

    with Batcher(gate, name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        asyncio.run(asyncio.wait_for(main(batcher), TIMEOUT))
    assert 1 not in gate.seen


def test_submit_async_waits_for_room_without_blocking_the_loop() -> None:
    gate = Gate()

    async def main(batcher: Batcher[int, int]) -> None:
        with pytest.raises(OverloadedError, match=r"0\.05s submit timeout"):
            await batcher.submit_async(2, timeout=0.05)
        waiting = asyncio.create_task(batcher.submit_async(2, timeout=TIMEOUT))
        # This coroutine runs on while the submit waits for room: the loop is not blocked by it.
        assert await asyncio.to_thread(entered.wait, TIMEOUT), "the submit never started to wait"
        assert not waiting.done() and batcher.queue_depth == 1
        gate.release.set()
        assert await waiting == 4

    with Batcher(gate, BatcherConfig(queue_size=1), name=unique_name()) as batcher:
        first = hold_first_batch(gate, batcher)
        batcher.submit(1)
        entered, _ = watch_enqueue(batcher)
        asyncio.run(main(batcher))
    # Had the waiting submit blocked the loop, room would have come only from the gate
    # giving up on its release: the first batch would have failed instead.
    assert first.result(TIMEOUT) == 0


def test_submit_async_without_a_wait_fails_at_once_on_a_full_queue() -> None:
    gate = Gate()

    async def main(batcher: Batcher[int, int]) -> None:
        with pytest.raises(OverloadedError):
            await batcher.submit_async(2, timeout=0)
        gate.release.set()

    with Batcher(gate, BatcherConfig(queue_size=1), name=unique_name()) as batcher:
        first = hold_first_batch(gate, batcher)
        batcher.submit(1)
        asyncio.run(main(batcher))
    assert first.result(TIMEOUT) == 0 and gate.seen == [0, 1]


def test_cancelling_while_waiting_for_room_cancels_the_request() -> None:
    gate = Gate()

    async def main(batcher: Batcher[int, int]) -> None:
        waiting = asyncio.create_task(batcher.submit_async(2, timeout=TIMEOUT))
        assert await asyncio.to_thread(entered.wait, TIMEOUT), "the submit never started to wait"
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not queued.is_set()  # the queue is full until the gate opens
        # The worker thread still queues item 2 once there is room; it must be dropped.
        gate.release.set()
        assert await asyncio.to_thread(queued.wait, TIMEOUT), "item 2 was never queued"
        assert await batcher.submit_async(3, timeout=TIMEOUT) == 6

    with Batcher(gate, BatcherConfig(queue_size=1), name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        batcher.submit(1)
        entered, queued = watch_enqueue(batcher)
        asyncio.run(main(batcher))
    assert 2 not in gate.seen


# --- rule 8: concurrency --------------------------------------------------------------------


def echo(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return list(items)


def test_many_threads_each_get_exactly_their_own_results() -> None:
    n_threads, per_thread = 16, 500
    seen: list[tuple[int, int]] = []
    sizes: list[int] = []

    def process(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
        seen.extend(items)
        sizes.append(len(items))
        return echo(items)

    config = BatcherConfig(max_batch_size=32, submit_timeout_s=TIMEOUT)
    results: dict[int, list[tuple[int, int]]] = {}
    start = threading.Barrier(n_threads)

    def client(tid: int) -> None:
        start.wait(TIMEOUT)
        futures = [batcher.submit((tid, i)) for i in range(per_thread)]
        results[tid] = [f.result(TIMEOUT) for f in futures]

    with Batcher(process, config, name=unique_name()) as batcher:
        clients = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(2 * TIMEOUT)
    for tid in range(n_threads):
        assert results[tid] == [(tid, i) for i in range(per_thread)]
    assert sorted(seen) == [(t, i) for t in range(n_threads) for i in range(per_thread)]
    assert max(sizes) <= 32


def test_many_tasks_each_get_exactly_their_own_results() -> None:
    n = 4000

    async def main(batcher: Batcher[tuple[int, int], tuple[int, int]]) -> list[tuple[int, int]]:
        return await asyncio.gather(*(batcher.submit_async((i, -i)) for i in range(n)))

    sizes: list[int] = []

    def process(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
        sizes.append(len(items))
        return echo(items)

    with Batcher(process, BatcherConfig(max_batch_size=16), name=unique_name()) as batcher:
        assert asyncio.run(main(batcher)) == [(i, -i) for i in range(n)]
    assert sum(sizes) == n
    assert max(sizes) <= 16


def test_slow_process_lets_requests_batch_together() -> None:
    # Requests that arrive while process is busy must leave together in the next batch.
    gate = Gate()
    with Batcher(gate, BatcherConfig(max_batch_size=8), name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        futures = [batcher.submit(i) for i in range(1, 5)]
        gate.release.set()
        assert [f.result(TIMEOUT) for f in futures] == [2, 4, 6, 8]
    assert gate.batches[1] == [1, 2, 3, 4]
    assert max(len(b) for b in gate.batches) > 1


# --- rule 9: observer -----------------------------------------------------------------------


def test_observer_gets_a_record_per_batch_on_the_dispatcher_thread() -> None:
    name = unique_name()
    records: list[tuple[str, BatchRecord]] = []
    gate = Gate(lambda xs: [x // 0 for x in xs] if 7 in xs else double(xs))

    def observer(record: BatchRecord) -> None:
        records.append((threading.current_thread().name, record))

    with Batcher(gate, BatcherConfig(max_batch_size=8), observer=observer, name=name) as batcher:
        started = time.monotonic()
        hold_first_batch(gate, batcher)
        held_from = time.monotonic()  # the first batch is inside process by now
        cancelled = batcher.submit(5)
        ok = batcher.submit(6)
        queued_by = time.monotonic()  # 6 is queued by now, and waits for the release
        cancelled.cancel()
        released_at = time.monotonic()
        gate.release.set()
        assert ok.result(TIMEOUT) == 12
        answered_by = time.monotonic()
        with pytest.raises(ZeroDivisionError):
            batcher.submit(7).result(TIMEOUT)
    assert {thread for thread, _ in records} == {name}
    first, second, third = (record for _, record in records)
    assert (first.size, first.error) == (1, None)
    assert (second.size, second.error) == (1, None)  # the cancelled request is not counted
    assert len(second.queue_wait_s) == 1
    assert isinstance(third.error, ZeroDivisionError)
    # Bounds read on the batcher's clock around events the test caused, not thresholds: the
    # first batch computed at least while it was held, and 6 waited at least for the release.
    assert released_at - held_from <= first.compute_s <= answered_by - started
    assert released_at - queued_by <= second.queue_wait_s[0] <= answered_by - held_from


def test_observer_errors_are_logged_and_serving_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_observer(record: BatchRecord) -> None:
        raise RuntimeError("metrics backend down")

    caplog.set_level(logging.ERROR, logger="vigil.runtime.batcher")
    name = unique_name()
    with Batcher(double, observer=broken_observer, name=name) as batcher:
        assert [batcher.submit(i).result(TIMEOUT) for i in range(3)] == [0, 2, 4]
    failures = [r for r in caplog.records if "observer failed" in r.getMessage()]
    assert len(failures) == 3
    assert failures[0].exc_info is not None
    assert failures[0].exc_info[0] is RuntimeError
    assert failures[0].getMessage().startswith(f"{name} observer failed on BatchRecord(")


# --- rule 10: the work-conserving policy (issue 9) -------------------------------------------


def test_a_lone_request_is_dispatched_without_waiting_for_company() -> None:
    # With the default policy a request that finds the model idle runs at once: process is
    # entered while the submitter has not yet released anything, and the batch is just it.
    gate = Gate()
    with Batcher(gate, BatcherConfig(max_batch_size=64), name=unique_name()) as batcher:
        future = hold_first_batch(gate, batcher)  # waits on gate.entered, never on a clock
        assert gate.batches == [[0]]
        gate.release.set()
        assert future.result(TIMEOUT) == 0


def test_requests_arriving_during_a_busy_batch_form_the_next_batch() -> None:
    k = 7
    gate = Gate()
    with Batcher(gate, BatcherConfig(max_batch_size=64), name=unique_name()) as batcher:
        first = hold_first_batch(gate, batcher)
        futures = [batcher.submit(i) for i in range(1, k + 1)]
        assert batcher.queue_depth == k
        gate.release.set()
        assert first.result(TIMEOUT) == 0
        assert [f.result(TIMEOUT) for f in futures] == [2 * i for i in range(1, k + 1)]
    assert gate.batches == [[0], list(range(1, k + 1))]


def test_a_busy_backlog_leaves_in_batches_of_max_batch_size_in_order() -> None:
    gate = Gate()
    with Batcher(gate, BatcherConfig(max_batch_size=3), name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        futures = [batcher.submit(i) for i in range(1, 8)]
        gate.release.set()
        assert [f.result(TIMEOUT) for f in futures] == [2 * i for i in range(1, 8)]
    assert gate.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]


def test_cancelled_requests_of_a_busy_period_are_never_computed() -> None:
    gate = Gate()
    with Batcher(gate, BatcherConfig(max_batch_size=64), name=unique_name()) as batcher:
        hold_first_batch(gate, batcher)
        futures = [batcher.submit(i) for i in range(1, 6)]
        for future in futures[::2]:
            assert future.cancel()
        gate.release.set()
        assert [f.result(TIMEOUT) for f in futures[1::2]] == [4, 8]
    assert gate.seen == [0, 2, 4]


def test_close_drains_a_busy_queue_and_stops_both_threads() -> None:
    name = unique_name()
    gate = Gate()
    batcher = Batcher(gate, BatcherConfig(max_batch_size=2), name=name)
    hold_first_batch(gate, batcher)
    futures = [batcher.submit(i) for i in range(1, 6)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gate.release.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    assert all(f.done() for f in futures)  # close(wait=True) returned: all answered
    assert [f.result() for f in futures] == [2, 4, 6, 8, 10]
    assert not thread_alive(name) and not thread_alive(f"{name}-deliver")


def test_a_lone_answer_is_delivered_by_the_idle_dispatcher_with_its_timings() -> None:
    # Nothing is queued behind it, so no next batch waits for the dispatcher: it resolves the
    # future itself, one thread hop less for a lone request.
    name = unique_name()
    gate = Gate()
    records: list[BatchRecord] = []
    resolved_on: list[str] = []
    with Batcher(gate, name=name, weigh=len, observer=records.append) as batcher:
        future = batcher.submit(21, timed=True)
        assert gate.entered.wait(TIMEOUT)  # computing: the future cannot be done yet
        future.add_done_callback(lambda _: resolved_on.append(threading.current_thread().name))
        gate.release.set()
        timed = future.result(TIMEOUT)
    assert isinstance(timed, batcher_module.Timed)
    assert timed.result == 42 and timed.queue_s >= 0 and timed.compute_s >= 0
    assert resolved_on == [name]
    assert [r.work for r in records] == [1]


def test_under_load_answers_are_delivered_off_the_dispatcher_thread() -> None:
    # Requests queued behind a batch: the dispatcher hands its answers over and starts the
    # next batch while the deliverer resolves them.
    name = unique_name()
    gate = Gate()
    resolved_on: list[str] = []
    with Batcher(gate, BatcherConfig(max_batch_size=1), name=name) as batcher:
        first = hold_first_batch(gate, batcher)
        first.add_done_callback(lambda _: resolved_on.append(threading.current_thread().name))
        rest = [batcher.submit(i) for i in (1, 2)]
        gate.release.set()
        assert [f.result(TIMEOUT) for f in (first, *rest)] == [0, 2, 4]
    assert resolved_on == [f"{name}-deliver"]




# --- batches of one group ----------------------------------------------------------------


class Stepped:
    """A `process` that records each batch and returns only once `step()` allows one more."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self._steps = threading.Semaphore(0)

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        assert self._steps.acquire(timeout=TIMEOUT), "batch never released"
        return [2 * x for x in items]

    def finish(self) -> None:
        """Let the running batch return."""
        self._steps.release()

    def step(self, batches_seen: int) -> None:
        """Let the running batch return, and wait until the next one, the BATCHES_SEEN-th, started."""
        self.finish()
        wait_for(lambda: len(self.batches) == batches_seen, f"batch {batches_seen} to start")


def parity(x: int) -> int:
    return x % 2


def test_with_group_a_batch_runs_the_oldest_ones_group_and_the_rest_runs_next_with_newcomers() -> None:
    process, prepare = Stepped(), Preparer()
    with Batcher(process, name=unique_name(), prepare=prepare, group=parity) as batcher:
        futures = {0: batcher.submit(0)}
        wait_for(lambda: process.batches == [[0]], "the first batch to start")
        futures |= {x: batcher.submit(x) for x in (1, 2, 3, 4)}
        prepare.hold()
        process.finish()
        assert prepare.entered.wait(TIMEOUT)  # the dispatcher took 1-4 and prepares them
        futures[5] = batcher.submit(5)  # queued meanwhile, behind 2 and 4
        prepare.release.set()
        wait_for(lambda: len(process.batches) == 2, "the second batch to start")
        assert process.batches[1] == [-1, -3]  # 1 is the oldest: its group runs, 2 and 4 wait
        assert batcher.queue_depth == 3
        futures[6] = batcher.submit(6)
        process.step(3)
        assert process.batches[2] == [-2, -4, -6]  # back at the head, ahead of 5; 6 joins
        process.step(4)
        process.finish()
        assert {x: f.result(TIMEOUT) for x, f in futures.items()} == {x: -2 * x for x in futures}
    assert process.batches == [[0], [-1, -3], [-2, -4, -6], [-5]]
    assert sorted(prepare.prepared) == [0, 1, 2, 3, 4, 5, 6]  # what was put back is not prepared again


def test_with_group_ahead_what_was_put_back_is_not_prepared_again() -> None:
    process, prepare = Stepped(), Preparer()
    name = unique_name()
    with Batcher(process, name=name, prepare=prepare, prepare_ahead=True, group=parity) as batcher:
        futures = {0: batcher.submit(0)}
        wait_for(lambda: process.batches == [[0]], "the first batch to start")
        futures |= {x: batcher.submit(x) for x in (1, 2, 3, 4)}
        wait_for(lambda: sorted(prepare.prepared) == [0, 1, 2, 3, 4], "1-4 to be prepared ahead")
        process.step(2)  # runs 1 and 3; 2 and 4 go back to the head, prepared
        futures[6] = batcher.submit(6)
        wait_for(lambda: 6 in prepare.prepared, "6 to be prepared ahead")
        process.step(3)
        process.finish()
        assert {x: f.result(TIMEOUT) for x, f in futures.items()} == {x: -2 * x for x in futures}
    assert [items for _, items in prepare.calls] == [[0], [1, 2, 3, 4], [6]]
    assert process.batches == [[0], [-1, -3], [-2, -4, -6]]


def test_with_group_a_request_put_back_can_still_be_cancelled_and_costs_no_compute() -> None:
    process = Stepped()
    with Batcher(process, name=unique_name(), group=parity) as batcher:
        hold = batcher.submit(0)
        wait_for(lambda: process.batches == [[0]], "the first batch to start")
        first, doomed, kept = batcher.submit(1), batcher.submit(2), batcher.submit(4)
        process.step(2)
        assert process.batches[1] == [1]
        assert doomed.cancel()
        process.step(3)
        process.finish()
        assert [f.result(TIMEOUT) for f in (hold, first, kept)] == [0, 2, 8]
    assert process.batches == [[0], [1], [4]]


def test_with_group_close_cancel_pending_cancels_what_a_batch_puts_back() -> None:
    # close() runs while the batch's prepare holds items 1-4: 1 and 3 were dispatched and run,
    # 2 and 4 would have been put back, and are cancelled as the queue was.
    process, prepare = Stepped(), Preparer()
    batcher = Batcher(process, name=unique_name(), prepare=prepare, group=parity)
    hold = batcher.submit(0)
    wait_for(lambda: process.batches == [[0]], "the first batch to start")
    futures = [batcher.submit(x) for x in (1, 2, 3, 4)]
    prepare.hold()
    process.finish()
    assert prepare.entered.wait(TIMEOUT)  # the dispatcher took 1-4 and prepares them
    batcher.close(wait=False, cancel_pending=True)
    prepare.release.set()
    wait_for(lambda: len(process.batches) == 2, "the group of 1 to run")
    process.finish()
    batcher.close()
    assert hold.result(TIMEOUT) == 0
    assert [f.result(TIMEOUT) for f in futures[::2]] == [-2, -6]
    assert all(f.cancelled() for f in futures[1::2])
    assert process.batches == [[0], [-1, -3]]


def test_a_failing_group_is_logged_and_its_batch_runs_as_one(caplog: pytest.LogCaptureFixture) -> None:
    def broken(item: int) -> int:
        raise KeyError(item)

    name = unique_name()
    gate = Gate()
    with Batcher(gate, name=name, group=broken) as batcher:
        hold_first_batch(gate, batcher)
        futures = [batcher.submit(x) for x in (1, 2, 3)]
        gate.release.set()
        assert [f.result(TIMEOUT) for f in futures] == [2, 4, 6]
    assert gate.batches == [[0], [1, 2, 3]]
    assert any(r.getMessage() == f"{name} group failed; the batch runs as one" for r in caplog.records)


def test_group_must_be_callable() -> None:
    with pytest.raises(TypeError, match="group must be callable"):
        Batcher(double, group=3)  # type: ignore[arg-type]


# --- the prepare stage -------------------------------------------------------------------


def test_prepare_turns_each_batch_into_what_process_takes_on_the_dispatcher() -> None:
    # What queued behind a busy batch is prepared in one call, as one batch, on the dispatcher
    # thread; process and weigh see what prepare made, and the record times prepare apart.
    name = unique_name()
    gate = Gate(list)
    prepared_on: list[tuple[str, list[int]]] = []

    def negate(items: list[int]) -> list[int]:
        prepared_on.append((threading.current_thread().name, list(items)))
        return [-x for x in items]

    records: list[BatchRecord] = []
    with Batcher(gate, name=name, prepare=negate, weigh=sum, observer=records.append) as batcher:
        hold_first_batch(gate, batcher)
        futures = [batcher.submit(i, timed=True) for i in (1, 2, 3)]
        gate.release.set()
        answers = [f.result(TIMEOUT) for f in futures]
    assert prepared_on == [(name, [0]), (name, [1, 2, 3])]
    assert gate.batches == [[0], [-1, -2, -3]]
    assert [a.result for a in answers] == [-1, -2, -3]
    assert all(a.prepare_s >= 0 and a.compute_s >= 0 for a in answers)
    assert [r.work for r in records] == [0, -6] and all(r.prepare_s >= 0 for r in records)


def test_a_failing_prepare_fails_only_its_own_batch_and_computes_nothing() -> None:
    gate = Gate()

    def refuse_13(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("13 cannot be prepared")
        return items

    records: list[BatchRecord] = []
    with Batcher(gate, name=unique_name(), prepare=refuse_13, weigh=len, observer=records.append) as batcher:
        hold_first_batch(gate, batcher)
        doomed = [batcher.submit(i) for i in (12, 13)]
        gate.release.set()
        for future in doomed:
            with pytest.raises(ValueError, match="13 cannot be prepared"):
                future.result(TIMEOUT)
        assert batcher.submit(5).result(TIMEOUT) == 10
    assert gate.batches == [[0], [5]]
    assert [(r.size, r.work, r.error is not None) for r in records] == [(1, 1, False), (2, 0, True), (1, 1, False)]


class Preparer:
    """A `prepare` that negates items and records each call's items and thread; `hold()`
    makes the next calls block until `release` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def hold(self) -> None:
        self.release.clear()
        self.entered.clear()

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append((threading.current_thread().name, list(items)))
        self.entered.set()
        assert self.release.wait(TIMEOUT), "prepare never released"
        return [-x for x in items]

    @property
    def prepared(self) -> list[int]:
        return [x for _, items in self.calls for x in items]


def batcher_ahead(name: str) -> tuple[Gate, Preparer, Batcher[int, int]]:
    """A batcher that prepares ahead with a `Preparer`, whose gated `process` echoes."""
    gate, prepare = Gate(list), Preparer()
    return gate, prepare, Batcher(gate, name=name, prepare=prepare, prepare_ahead=True)


def test_ahead_what_queues_behind_a_running_batch_is_prepared_off_the_dispatcher() -> None:
    # The lone first request is prepared by the idle dispatcher; the ones queued while its
    # batch runs are prepared by the preparer, and still leave together, as one batch.
    name = unique_name()
    gate, prepare, batcher = batcher_ahead(name)
    with batcher:
        hold_first_batch(gate, batcher)
        futures = [batcher.submit(i) for i in (1, 2, 3)]
        wait_for(lambda: sorted(prepare.prepared) == [0, 1, 2, 3], "the queued items to be prepared")
        assert gate.batches == [[0]]  # prepared while the first batch still runs
        gate.release.set()
        assert [f.result(TIMEOUT) for f in futures] == [-1, -2, -3]
    assert prepare.calls[0] == (name, [0])
    assert {thread for thread, _ in prepare.calls[1:]} == {f"{name}-prepare"}
    assert gate.batches == [[0], [-1, -2, -3]]
    assert not thread_alive(f"{name}-prepare")


def test_ahead_a_request_cancelled_after_being_prepared_costs_no_compute() -> None:
    gate, prepare, batcher = batcher_ahead(unique_name())
    with batcher:
        hold_first_batch(gate, batcher)
        doomed, kept = batcher.submit(1), batcher.submit(2)
        wait_for(lambda: sorted(prepare.prepared) == [0, 1, 2], "the queued items to be prepared")
        assert doomed.cancel()
        gate.release.set()
        assert kept.result(TIMEOUT) == -2
    assert gate.batches == [[0], [-2]]


def test_ahead_the_dispatcher_waits_for_a_preparer_call_holding_its_batch() -> None:
    # The model frees up while the preparer is still inside prepare for the next batch:
    # the dispatcher takes that batch but waits for the call, and prepares nothing twice.
    name = unique_name()
    gate, prepare, batcher = batcher_ahead(name)
    with batcher:
        hold_first_batch(gate, batcher)
        prepare.hold()
        future = batcher.submit(1)
        assert prepare.entered.wait(TIMEOUT)  # the preparer holds item 1
        gate.release.set()
        wait_for(lambda: batcher.queue_depth == 0, "the dispatcher to take item 1")
        assert not future.done() and gate.batches == [[0]]
        prepare.release.set()
        assert future.result(TIMEOUT) == -1
    assert prepare.calls == [(name, [0]), (f"{name}-prepare", [1])]
    assert gate.batches == [[0], [-1]]


def test_ahead_a_failing_prepare_fails_only_its_own_items() -> None:
    gate = Gate(list)
    tried: list[list[int]] = []

    def refuse_13(items: list[int]) -> list[int]:
        tried.append(list(items))
        if 13 in items:
            raise ValueError("13 cannot be prepared")
        return [-x for x in items]

    with Batcher(gate, name=unique_name(), prepare=refuse_13, prepare_ahead=True) as batcher:
        hold_first_batch(gate, batcher)
        doomed = batcher.submit(13)
        wait_for(lambda: [13] in tried, "13 to be tried ahead")
        kept = batcher.submit(14)
        wait_for(lambda: [14] in tried, "14 to be prepared ahead, in a call of its own")
        gate.release.set()  # the next batch holds both: 13 fails, 14 runs
        with pytest.raises(ValueError, match="13 cannot be prepared"):
            doomed.result(TIMEOUT)
        assert kept.result(TIMEOUT) == -14
    assert gate.batches == [[0], [-14]]


def test_ahead_a_backlog_is_prepared_in_calls_of_at_most_a_batch_each_item_once() -> None:
    gate, prepare = Gate(list), Preparer()
    name = unique_name()
    with Batcher(gate, BatcherConfig(max_batch_size=2), name=name, prepare=prepare, prepare_ahead=True) as batcher:
        sizes: list[int] = []  # of every call to prepare, empty ones included
        prepare_now = batcher._prepare_now
        batcher._prepare_now = lambda requests: sizes.append(len(requests)) or prepare_now(requests)  # type: ignore[method-assign]
        hold_first_batch(gate, batcher)
        prepare.hold()
        futures = [batcher.submit(1)]
        assert prepare.entered.wait(TIMEOUT)  # the preparer holds item 1 while the rest queues
        futures += [batcher.submit(i) for i in range(2, 7)]
        prepare.release.set()
        wait_for(lambda: sorted(prepare.prepared) == list(range(7)), "the backlog to be prepared ahead")
        time.sleep(0.05)  # room for a preparer that wakes with nothing to prepare to show it
        assert 0 not in sizes  # it sleeps until something queues
        gate.release.set()
        assert [f.result(TIMEOUT) for f in futures] == [-i for i in range(1, 7)]
    assert sorted(prepare.prepared) == list(range(7))  # nothing prepared twice
    assert [items for _, items in prepare.calls] == [[0], [1], [2, 3], [4, 5], [6]]
    assert gate.batches == [[0], [-1, -2], [-3, -4], [-5, -6]]


def test_ahead_prepares_in_every_busy_period_and_not_once_idle() -> None:
    # The dispatcher counts itself busy per batch, and idle again after it: the preparer
    # works during the second batch as during the first, and a request that arrives once
    # everything is answered is prepared by the idle dispatcher.
    name = unique_name()
    tokens = threading.Semaphore(0)  # one per batch allowed to finish
    batches: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        batches.append(list(items))
        assert tokens.acquire(timeout=TIMEOUT), "batch never released"
        return items

    prepare = Preparer()
    with Batcher(process, name=name, prepare=prepare, prepare_ahead=True) as batcher:
        futures = [batcher.submit(0)]
        wait_for(lambda: len(batches) == 1, "the first batch")
        futures.append(batcher.submit(1))
        wait_for(lambda: 1 in prepare.prepared, "item 1 to be prepared during the first batch")
        tokens.release()
        wait_for(lambda: len(batches) == 2, "the second batch")
        futures.append(batcher.submit(2))
        wait_for(lambda: 2 in prepare.prepared, "item 2 to be prepared during the second batch")
        tokens.release()
        tokens.release()
        assert [f.result(TIMEOUT) for f in futures] == [0, -1, -2]
        tokens.release()
        assert batcher.submit(3).result(TIMEOUT) == -3
    threads = {items[0]: thread for thread, items in prepare.calls}
    assert threads == {0: name, 1: f"{name}-prepare", 2: f"{name}-prepare", 3: name}


def test_ahead_needs_a_prepare() -> None:
    with pytest.raises(ValueError, match="prepare_ahead needs a prepare"):
        Batcher(double, prepare_ahead=True)


# --- several dispatchers: one batch in flight per model replica ---------------------------


def test_a_request_that_finds_a_dispatcher_idle_runs_beside_the_busy_one() -> None:
    # Two dispatchers: a second request runs at once on the idle one, in a batch of its own;
    # only when both are busy do requests queue, and the first to free up takes them all.
    name = unique_name()
    gate = Gate()
    with Batcher(gate, name=name, dispatchers=2) as batcher:
        first = hold_first_batch(gate, batcher)
        second = batcher.submit(1)
        wait_for(lambda: len(gate.batches) == 2, "both dispatchers to hold a batch")
        queued = [batcher.submit(i) for i in (2, 3, 4)]
        assert batcher.queue_depth == 3
        gate.release.set()
        assert [f.result(TIMEOUT) for f in (first, second, *queued)] == [0, 2, 4, 6, 8]
    assert gate.batches == [[0], [1], [2, 3, 4]]
    assert {t.name for t in gate.threads} <= {name, f"{name}-2"}
    assert len({t.name for t in gate.threads}) == 2
    assert not thread_alive(name) and not thread_alive(f"{name}-2") and not thread_alive(f"{name}-deliver")


def test_with_two_dispatchers_the_preparer_works_only_while_both_are_busy() -> None:
    # A request that finds a dispatcher idle is prepared by it; what queues while both
    # dispatchers compute is prepared ahead.
    name = unique_name()
    gate, prepare = Gate(list), Preparer()
    with Batcher(gate, name=name, prepare=prepare, prepare_ahead=True, dispatchers=2) as batcher:
        hold_first_batch(gate, batcher)
        second = batcher.submit(1)
        wait_for(lambda: len(gate.batches) == 2, "the idle dispatcher to take item 1")
        third = batcher.submit(2)
        wait_for(lambda: 2 in prepare.prepared, "item 2 to be prepared ahead")
        gate.release.set()
        assert [f.result(TIMEOUT) for f in (second, third)] == [-1, -2]
    by_item = {items[0]: thread for thread, items in prepare.calls}
    assert by_item[0] == name and by_item[1] == f"{name}-2" and by_item[2] == f"{name}-prepare"


def test_close_from_process_with_two_dispatchers_answers_everything() -> None:
    batcher: Batcher[int, int]

    def close_then_double(items: list[int]) -> list[int]:
        batcher.close()
        return double(items)

    name = unique_name()
    batcher = Batcher(close_then_double, name=name, dispatchers=2)
    assert batcher.submit(4).result(TIMEOUT) == 8
    batcher.close()
    assert not thread_alive(name) and not thread_alive(f"{name}-2")


def test_the_deliverer_outlives_every_dispatcher_not_just_the_first_to_stop() -> None:
    # One dispatcher stops (closed, queue empty) while the other still computes and the
    # deliverer is busy: the other's answer must still be delivered, not queued behind a
    # stop signal.
    events = {item: threading.Event() for item in range(3)}
    entered: dict[int, threading.Thread] = {}

    def held(items: list[int]) -> list[int]:
        entered[items[0]] = threading.current_thread()
        assert events[items[0]].wait(TIMEOUT), f"item {items[0]} never released"
        return double(items)

    stall = threading.Event()
    batcher = Batcher(held, BatcherConfig(max_batch_size=1), name=unique_name(), dispatchers=2)
    first = batcher.submit(0)
    wait_for(lambda: 0 in entered, "item 0 to be computed")
    second = batcher.submit(1)
    wait_for(lambda: 1 in entered, "item 1 to be computed beside it")
    third = batcher.submit(2)  # both busy: it queues, so item 0's answer goes to the deliverer
    first.add_done_callback(lambda _: stall.wait(TIMEOUT))  # ... which it then holds up
    events[0].set()
    wait_for(lambda: 2 in entered, "item 2 to be computed")
    batcher.close(wait=False)
    events[2].set()
    wait_for(lambda: not entered[2].is_alive(), "the dispatcher of items 0 and 2 to stop")
    events[1].set()
    wait_for(lambda: not entered[1].is_alive(), "the other dispatcher to hand item 1's answer over and stop")
    stall.set()
    assert [f.result(TIMEOUT) for f in (first, second, third)] == [0, 2, 4]
    batcher.close()


@pytest.mark.parametrize("dispatchers", [0, -1, True, 1.5])
def test_dispatchers_must_be_a_positive_int(dispatchers: object) -> None:
    with pytest.raises((TypeError, ValueError), match="dispatchers"):
        Batcher(double, dispatchers=dispatchers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "prepare_ahead, dispatchers, grouped",
    [(False, 1, False), (True, 1, False), (False, 2, False), (True, 2, False), (False, 1, True), (True, 2, True)],
)
def test_under_load_with_cancellations_nothing_is_lost_duplicated_or_mixed_up(
    prepare_ahead: bool, dispatchers: int, grouped: bool
) -> None:
    # 64 client threads, every 7th request cancelled as soon as it is queued: each other one
    # gets its own item back, each cancelled one never reaches process, nothing runs twice;
    # grouped (by i % 3), every batch holds one group.
    n_threads, per_thread = 64, 60
    seen: list[tuple[int, int]] = []
    groups_per_batch: list[int] = []
    prepared: list[tuple[int, int]] = []
    outcomes: dict[int, list[tuple[bool, Future[tuple[int, int]]]]] = {}
    start = threading.Barrier(n_threads)

    def process(items: list[tuple[int, int]]) -> list[tuple[int, int]]:
        seen.extend(items)
        groups_per_batch.append(len({i % 3 for _, i in items}))
        return echo(items)

    def client(tid: int) -> None:
        start.wait(TIMEOUT)
        mine = outcomes.setdefault(tid, [])
        for i in range(per_thread):
            future = batcher.submit((tid, i))
            mine.append((i % 7 == 0 and future.cancel(), future))

    config = BatcherConfig(max_batch_size=16, submit_timeout_s=TIMEOUT)
    with Batcher(
        process, config, name=unique_name(), prepare=lambda items: prepared.extend(items) or items,
        prepare_ahead=prepare_ahead, dispatchers=dispatchers,
        group=(lambda item: item[1] % 3) if grouped else None,
    ) as batcher:
        clients = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(2 * TIMEOUT)
    cancelled = set()
    for tid, mine in outcomes.items():
        for i, (was_cancelled, future) in enumerate(mine):
            if was_cancelled:
                cancelled.add((tid, i))
                assert future.cancelled()
            else:
                assert future.result(TIMEOUT) == (tid, i)
    assert len(outcomes) == n_threads and cancelled
    assert len(seen) == len(set(seen))  # nothing computed twice
    assert len(prepared) == len(set(prepared))  # nor prepared twice
    assert set(seen) == {(t, i) for t in range(n_threads) for i in range(per_thread)} - cancelled
    if grouped:
        assert set(groups_per_batch) == {1}
    else:  # the load did mix groups in batches, so the grouped runs above were put to the test
        assert max(groups_per_batch) > 1
