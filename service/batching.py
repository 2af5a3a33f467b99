"""Per-variant micro-batching with admission control.

Concurrent requests for one variant are gathered into one ``predict_logits`` call: up to
``max_batch_size`` inputs (images, or preprocessed arrays from the V2 protocol), or whatever has
arrived ``max_wait_ms`` after the first. Each variant
has one worker thread, so a variant's forward passes never overlap (and never oversubscribe the
cores beyond that runtime's own threads), while the event loop stays free for health checks,
metrics and decoding.

Admission: a full queue answers 503 with Retry-After, a request past its deadline 504, and
work for a request that has been cancelled (its client went away) is dropped before it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from build_models.errors import VitserveError
from service.metrics import ServiceMetrics


class QueueFullError(VitserveError):
    """The variant's queue is at its bound: retry later."""

    def __init__(self, variant: str, retry_after_s: int) -> None:
        super().__init__(f"variant {variant!r} is saturated (queue full); retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class DeadlineExceededError(VitserveError):
    """The request waited and ran longer than the configured deadline."""


class ClientGoneError(VitserveError):
    """The client disconnected while its request waited; its work was dropped."""


POLL_S = 0.05  # how often a waiting request checks that its client is still there


@dataclass
class _Item:
    input: Image.Image | np.ndarray
    future: asyncio.Future[tuple[np.ndarray, float]]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Gathers one variant's requests into batches and runs them on that variant's worker thread."""

    def __init__(self, name: str, run_batch: Callable[[list[Image.Image | np.ndarray]], np.ndarray],
                 metrics: ServiceMetrics, max_batch_size: int, max_wait_ms: float, queue_size: int) -> None:
        self.name, self.run_batch, self.metrics = name, run_batch, metrics
        self.max_batch_size, self.max_wait_s, self.queue_size = max_batch_size, max_wait_ms / 1000, queue_size
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, image: Image.Image | np.ndarray, timeout_s: float,
                     client_gone: Callable[[], Awaitable[bool]] | None = None) -> tuple[np.ndarray, float]:
        """Logits for one input and its batch's forward time in ms; raises QueueFullError (503),
        DeadlineExceededError (504) or ClientGoneError (the client disconnected while waiting)."""
        if self.queue.qsize() >= self.queue_size:
            raise QueueFullError(self.name, retry_after_s=1)
        item = _Item(image, asyncio.get_running_loop().create_future())
        self.queue.put_nowait(item)
        self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())
        deadline = time.perf_counter() + timeout_s
        try:
            while not item.future.done():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise DeadlineExceededError(f"no answer from {self.name!r} within {timeout_s:g} s")
                await asyncio.wait({item.future}, timeout=min(POLL_S, remaining))
                if not item.future.done() and client_gone is not None and await client_gone():
                    raise ClientGoneError(f"the client left before {self.name!r} answered; its work was dropped")
            return item.future.result()
        finally:
            if not item.future.done():
                item.future.cancel()  # dropped by the worker if it has not run yet

    async def _next_batch(self) -> list[_Item]:
        batch = [await self.queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())
        return [item for item in batch if not item.future.done()]  # cancelled: the client is gone

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            started = time.perf_counter()
            for item in batch:
                self.metrics.latency.labels(self.name, "queue_wait").observe(started - item.enqueued)
            try:
                logits = await loop.run_in_executor(self.executor, self.run_batch, [i.input for i in batch])
            except Exception as exc:  # noqa: BLE001 - handed to each waiting request
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(self.name, "inference").observe(elapsed)
            self.metrics.batch_size.labels(self.name).observe(len(batch))
            for item, row in zip(batch, logits, strict=True):
                if not item.future.done():
                    item.future.set_result((row, elapsed * 1000))
