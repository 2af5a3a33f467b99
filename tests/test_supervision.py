"""The batch worker under faults: a dying worker is restarted, a bad item fails alone, admission is bounded
by requests and bytes, and stopping answers whatever was left."""

import asyncio
import threading
import time

import numpy as np
import pytest

from service.batching import (
    CRASH_LIMIT,
    BatcherLimits,
    BatchOutputError,
    ByteBudget,
    DeadlineExceededError,
    MicroBatcher,
    QueueFullError,
    ServiceStoppingError,
    WorkerRestartedError,
)
from service.prometheus import ServiceMetrics


class WorkerKilled(BaseException):
    """Escapes the worker's error handling, as a bug outside its try would: the task dies."""


def _inputs(*values: float) -> list[np.ndarray]:
    return [np.full((3, 4, 4), value, dtype=np.float32) for value in values]


def _logits(batch) -> np.ndarray:
    """Row i is [v, -v] for the input filled with v, so each answer shows which input it came from."""
    values = np.asarray([float(item[0, 0, 0]) for item in batch], dtype=np.float32)
    return np.stack([values, -values], axis=1)


def _batcher(run_batch, batch_size=8, wait_ms=50.0, queue_size=16, queued_bytes=1 << 20) -> MicroBatcher:
    return MicroBatcher("v", run_batch, ServiceMetrics(), BatcherLimits(batch_size, wait_ms, queue_size),
                        ByteBudget(queued_bytes))


def test_a_bad_item_fails_alone_and_its_batch_neighbours_get_their_own_answers():
    seen: list[int] = []

    def run_batch(batch):
        seen.append(len(batch))
        if any(float(item[0, 0, 0]) == 13 for item in batch):
            raise ValueError("this input breaks the runtime")
        return _logits(batch)

    async def scenario():
        batcher = _batcher(run_batch)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit(x, 5.0) for x in _inputs(1, 2, 13, 4)),
                                       return_exceptions=True)
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    assert seen[0] == 4  # they did share one batch, which failed
    assert isinstance(answers[2], ValueError)
    assert [float(a[0][0]) for i, a in enumerate(answers) if i != 2] == [1.0, 2.0, 4.0]


def test_a_runtime_returning_the_wrong_row_count_fails_those_requests_and_the_worker_keeps_serving():
    calls = {"n": 0}

    def run_batch(batch):
        calls["n"] += 1
        return _logits(batch)[:0] if calls["n"] == 1 else _logits(batch)

    async def scenario():
        batcher = _batcher(run_batch, batch_size=1)
        batcher.start()
        with pytest.raises(BatchOutputError):
            await batcher.submit(_inputs(5)[0], 5.0)
        answer = await batcher.submit(_inputs(6)[0], 5.0)
        await batcher.stop()
        return answer

    assert float(asyncio.run(scenario())[0][0]) == 6.0


def test_a_worker_that_dies_is_restarted_and_its_in_flight_requests_get_503():
    deaths = {"left": 1}

    def run_batch(batch):
        if deaths["left"]:
            deaths["left"] -= 1
            time.sleep(0.05)
            raise WorkerKilled()
        return _logits(batch)

    async def scenario():
        batcher = _batcher(run_batch)
        batcher.start()
        first = batcher.task
        failed = await asyncio.gather(*(batcher.submit(x, 5.0) for x in _inputs(1, 2)), return_exceptions=True)
        after = await batcher.submit(_inputs(3)[0], 5.0)
        restarted = batcher.task is not first and not batcher.task.done()
        await batcher.stop()
        return failed, after, restarted, batcher

    failed, after, restarted, batcher = asyncio.run(scenario())
    assert all(isinstance(f, WorkerRestartedError) and f.retry_after_s == 1 for f in failed)
    assert float(after[0][0]) == 3.0 and restarted
    assert batcher.healthy  # one death is not a pattern
    restarts = batcher.metrics.registry.get_sample_value("vitserve_worker_restarts_total", {"variant": "v"})
    assert restarts == 1


def test_a_worker_that_keeps_dying_marks_its_variant_unhealthy():
    def run_batch(batch):
        raise WorkerKilled()

    async def scenario():
        batcher = _batcher(run_batch, batch_size=1)
        batcher.start()
        for x in _inputs(*range(CRASH_LIMIT)):
            with pytest.raises(WorkerRestartedError):
                await batcher.submit(x, 5.0)
        await batcher.stop()
        return batcher.healthy

    assert asyncio.run(scenario()) is False


def test_admission_counts_requests_and_bytes_and_releases_them():
    batcher = _batcher(_logits, queue_size=2, queued_bytes=1000)
    with batcher.reserve(1, 600):
        with pytest.raises(QueueFullError, match="bytes"), batcher.reserve(1, 600):
            pass
        with batcher.reserve(1, 100), pytest.raises(QueueFullError, match="queue full"), batcher.reserve(1, 1):
            pass
    assert (batcher.admitted, batcher.admitted_bytes, batcher.budget.held) == (0, 0, 0)
    with batcher.reserve(1, 5000):  # alone, a request over the byte cap is still admitted (the body limit bounds it)
        assert batcher.admitted_bytes == 5000


def test_the_byte_budget_is_shared_by_every_variant():
    budget = ByteBudget(1000)
    one, other = (MicroBatcher(name, _logits, ServiceMetrics(), BatcherLimits(8, 0, 16), budget) for name in "ab")
    with one.reserve(1, 600):
        with pytest.raises(QueueFullError, match="admitted bytes"), other.reserve(1, 600):
            pass
        with other.reserve(1, 400):
            assert budget.held == 1000
    assert budget.held == 0


def test_a_worker_dying_while_it_gathers_a_batch_answers_the_request_it_took_503_at_once():
    async def scenario():
        batcher = _batcher(_logits, batch_size=8, wait_ms=200)
        calls = {"n": 0}
        real_get = batcher.queue.get

        async def get_then_die():  # the first get takes the request; the wait for company dies (once)
            calls["n"] += 1
            if calls["n"] == 2:
                raise WorkerKilled()
            return await real_get()

        batcher.queue.get = get_then_die
        batcher.start()
        started = time.perf_counter()
        with pytest.raises(WorkerRestartedError):
            await batcher.submit(_inputs(1)[0], 3.0)
        waited = time.perf_counter() - started
        after = await batcher.submit(_inputs(2)[0], 3.0)  # the restarted worker serves
        await batcher.stop()
        return waited, after

    waited, after = asyncio.run(scenario())
    assert waited < 1.0  # answered at once, not left to its 3 s deadline (504)
    assert float(after[0][0]) == 2.0


def test_a_request_answered_504_keeps_its_slot_and_bytes_until_its_forward_pass_ends():
    running, finish = threading.Event(), threading.Event()

    def run_batch(batch):
        running.set()
        finish.wait(5)
        return _logits(batch)

    async def scenario():
        batcher = _batcher(run_batch, batch_size=1, wait_ms=0)
        batcher.start()
        with pytest.raises(DeadlineExceededError), batcher.reserve(1, 300) as hold:
            await batcher.submit(_inputs(1)[0], 0.2, hold=hold)
        assert running.is_set()
        during = (batcher.admitted, batcher.budget.held)  # the request has gone; its pass still runs
        finish.set()
        for _ in range(100):
            if not batcher.admitted:
                break
            await asyncio.sleep(0.01)
        after = (batcher.admitted, batcher.budget.held)
        await batcher.stop()
        return during, after

    during, after = asyncio.run(scenario())
    assert during == (1, 300)
    assert after == (0, 0)


def test_a_request_that_stops_waiting_before_its_batch_runs_lets_go_at_once():
    finish = threading.Event()

    def run_batch(batch):
        finish.wait(5)
        return _logits(batch)

    async def scenario():
        batcher = _batcher(run_batch, batch_size=1, wait_ms=0)
        batcher.start()
        first = asyncio.create_task(batcher.submit(_inputs(1)[0], 5.0))  # occupies the worker
        await asyncio.sleep(0.05)
        with pytest.raises(DeadlineExceededError), batcher.reserve(1, 300) as hold:
            await batcher.submit(_inputs(2)[0], 0.1, hold=hold)  # still queued: it will never run
        queued_gone = (batcher.admitted, batcher.budget.held)
        finish.set()
        await first
        await batcher.stop()
        return queued_gone

    assert asyncio.run(scenario()) == (0, 0)


def test_stopping_answers_queued_requests_with_503():
    def run_batch(batch):
        time.sleep(0.3)
        return _logits(batch)

    async def scenario():
        batcher = _batcher(run_batch, batch_size=1, wait_ms=0)
        batcher.start()
        waiting = [asyncio.create_task(batcher.submit(x, 5.0)) for x in _inputs(1, 2, 3)]
        await asyncio.sleep(0.1)
        await batcher.stop()
        return await asyncio.gather(*waiting, return_exceptions=True)

    answers = asyncio.run(scenario())
    assert sum(isinstance(a, ServiceStoppingError) for a in answers) >= 2
    assert not any(isinstance(a, asyncio.CancelledError) for a in answers)
