"""The batch worker under faults: a dying worker is restarted, a bad item fails alone, admission is bounded
by requests and bytes, and stopping answers whatever was left."""

import asyncio
import time

import numpy as np
import pytest

from service.batching import (
    CRASH_LIMIT,
    BatcherLimits,
    BatchOutputError,
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
    return MicroBatcher("v", run_batch, ServiceMetrics(), BatcherLimits(batch_size, wait_ms, queue_size, queued_bytes))


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
    assert (batcher.admitted, batcher.admitted_bytes) == (0, 0)
    with batcher.reserve(1, 5000):  # alone, a request over the byte cap is still admitted (the body limit bounds it)
        assert batcher.admitted_bytes == 5000


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
