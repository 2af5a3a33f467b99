"""Per-variant micro-batching with admission control and a supervised worker.

Concurrent requests for one variant are gathered into one ``predict_logits`` call: up to
``max_batch_size`` inputs (each already decoded and preprocessed by its own request, so a bad
input fails alone), or whatever has arrived ``max_wait_ms`` after the first. Each variant has one
worker thread, so a variant's forward passes never overlap (and never oversubscribe the cores
beyond that runtime's own threads), while the event loop stays free for health checks, metrics
and decoding.

Admission happens before a request's body is decoded: ``reserve`` counts the request against its
variant's ``queue_size`` and its bytes against the process-wide ``ByteBudget`` (shared by every
variant) and answers 503 with Retry-After past either. What ``reserve`` admits is held until the
request has ended *and* every forward pass carrying one of its inputs has ended, so a request
answered 504, or whose client left, keeps counting while its pass still runs. A request past its
deadline gets 504, and work for a request whose client went away is dropped before it runs. When a
batch fails, its items are retried one by one, so only the item at fault gets the error. When the
worker task itself dies (while it runs a batch or while it gathers one), the requests it had taken
get 503 at once and a new worker starts; a variant whose worker keeps dying is reported as not healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from service.prometheus import ServiceMetrics
from vitcore.errors import VitserveError

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a waiting request checks that its client is still there
CRASH_LIMIT, CRASH_WINDOW_S = 3, 60.0  # this many worker deaths within the window: the variant is not healthy

ModelInput = Image.Image | np.ndarray


class QueueFullError(VitserveError):
    """The variant holds as many requests (or bytes) as it may: retry later."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class WorkerRestartedError(QueueFullError):
    """The variant's batch worker died while this request was in flight; a new one has started."""


class ServiceStoppingError(QueueFullError):
    """The service stopped before this request's batch ran."""


class DeadlineExceededError(VitserveError):
    """The request waited and ran longer than the configured deadline."""


class ClientGoneError(VitserveError):
    """The client disconnected while its request waited; its work was dropped."""


class BatchOutputError(VitserveError):
    """A runtime returned a number of rows other than the batch size."""


class ByteBudget:
    """Bytes every admitted request of the process holds together (bodies and their parsed copies, preprocessed
    inputs), shared by every variant. A request alone is always admitted: the body limit bounds it."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def take(self, nbytes: int) -> None:
        if self.held and self.held + nbytes > self.limit:
            raise QueueFullError("the service holds its limit of admitted bytes (VITSERVE_MAX_QUEUED_BYTES); "
                                 "retry in 1 s")
        self.held += nbytes

    def give(self, nbytes: int) -> None:
        self.held -= nbytes


class Hold:
    """Admitted work, let go when its request and every forward pass carrying one of its inputs have let go."""

    def __init__(self, on_release: Callable[[], None]) -> None:
        self.holders, self.on_release = 1, on_release

    def hold(self) -> None:
        self.holders += 1

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self.on_release()


@dataclass
class _Item:
    input: ModelInput
    future: asyncio.Future[tuple[np.ndarray, float]]
    hold: Hold | None = None
    enqueued: float = field(default_factory=time.perf_counter)
    running: bool = False  # taken into a batch by the worker: its forward pass has started or will

    def let_go(self) -> None:
        """Release this item's share of its request's admission (once)."""
        hold, self.hold = self.hold, None
        if hold is not None:
            hold.release()


@dataclass(frozen=True)
class BatcherLimits:
    max_batch_size: int
    max_wait_ms: float
    queue_size: int


class MicroBatcher:
    """Gathers one variant's requests into batches and runs them on that variant's worker thread."""

    def __init__(self, name: str, run_batch: Callable[[list[ModelInput]], np.ndarray],
                 metrics: ServiceMetrics, limits: BatcherLimits, budget: ByteBudget | None = None) -> None:
        self.name, self.run_batch, self.metrics, self.limits = name, run_batch, metrics, limits
        self.budget = budget if budget is not None else ByteBudget(1 << 62)
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self.task: asyncio.Task[None] | None = None
        self.in_flight: list[_Item] = []
        self.admitted, self.admitted_bytes = 0, 0  # held now: requests (and their bytes) on this variant
        self.crashes: deque[float] = deque(maxlen=CRASH_LIMIT)
        self.stopping = False

    @property
    def healthy(self) -> bool:
        """False while the worker has died CRASH_LIMIT times within CRASH_WINDOW_S."""
        return len(self.crashes) < CRASH_LIMIT or time.monotonic() - self.crashes[0] > CRASH_WINDOW_S

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")
        self.task.add_done_callback(self._on_worker_exit)

    def _on_worker_exit(self, task: asyncio.Task[None]) -> None:
        if self.stopping or task.cancelled():
            return
        self.crashes.append(time.monotonic())
        self.metrics.worker_restarts.labels(self.name).inc()
        log.error("batch worker of %r died; %d request(s) in flight get 503; restarting it", self.name,
                  len(self.in_flight), exc_info=task.exception())
        self._fail_in_flight(WorkerRestartedError(f"variant {self.name!r} restarted its worker; retry"))
        self.start()

    def _fail_in_flight(self, error: Exception) -> None:
        """Answer every request the worker had taken (a batch being gathered included) with ``error``."""
        for item in self.in_flight:
            if not item.future.done():
                item.future.set_exception(error)
            item.let_go()
        self.in_flight = []

    async def stop(self) -> None:
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        stopped = ServiceStoppingError(f"the service stopped before {self.name!r} answered")
        self._fail_in_flight(stopped)
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(stopped)
            item.let_go()
        self.executor.shutdown(wait=False, cancel_futures=True)

    @contextmanager
    def reserve(self, count: int, nbytes: int) -> Iterator[Hold]:
        """Admit ``count`` inputs holding ``nbytes`` (of the process-wide budget), or raise QueueFullError (503).

        Held until the block ends and every forward pass carrying an input submitted with the yielded hold
        has ended."""
        if self.admitted + count > self.limits.queue_size:
            raise QueueFullError(f"variant {self.name!r} is saturated (queue full); retry in 1 s")
        self.budget.take(nbytes)
        self.admitted += count
        self.admitted_bytes += nbytes

        def release() -> None:
            self.admitted -= count
            self.admitted_bytes -= nbytes
            self.budget.give(nbytes)

        hold = Hold(release)
        try:
            yield hold
        finally:
            hold.release()

    async def submit(self, model_input: ModelInput, timeout_s: float,
                     client_gone: Callable[[], Awaitable[bool]] | None = None,
                     hold: Hold | None = None) -> tuple[np.ndarray, float]:
        """Logits for one input and its batch's forward time in ms; raises QueueFullError (503),
        DeadlineExceededError (504) or ClientGoneError (the client disconnected while waiting).

        ``hold`` (from ``reserve``) stays held until this input's forward pass has ended, even when the
        request stops waiting for it first."""
        if self.stopping:
            raise ServiceStoppingError(f"the service is stopping; {self.name!r} takes no new work")
        if self.queue.qsize() >= self.limits.queue_size:
            raise QueueFullError(f"variant {self.name!r} is saturated (queue full); retry in 1 s")
        item = _Item(model_input, asyncio.get_running_loop().create_future(), hold)
        if hold is not None:
            hold.hold()
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
            if not item.running:
                item.let_go()  # it will never run: nothing of it is in progress

    async def _next_batch(self) -> list[_Item]:
        """Gather a batch; every item taken is in ``in_flight`` at once, so a worker dying here answers it."""
        batch = self.in_flight = [await self.queue.get()]
        deadline = time.perf_counter() + self.limits.max_wait_ms / 1000
        while len(batch) < self.limits.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())
        live = [item for item in batch if not item.future.done()]  # cancelled: the client is gone
        for item in live:
            item.running = True
        return live

    async def _worker(self) -> None:
        while True:
            self.in_flight = []
            batch = self.in_flight = await self._next_batch()
            try:
                if batch:
                    await self._answer(batch)
            finally:
                for item in batch:
                    item.let_go()  # its forward pass has ended
            self.in_flight = []

    async def _forward(self, batch: list[_Item]) -> np.ndarray:
        logits = await asyncio.get_running_loop().run_in_executor(
            self.executor, self.run_batch, [item.input for item in batch])
        if len(logits) != len(batch):
            raise BatchOutputError(f"{self.name!r} returned {len(logits)} rows for a batch of {len(batch)}")
        return logits

    async def _answer(self, batch: list[_Item]) -> None:
        """Run a batch; when it fails, run its items one by one so the error reaches only the item at fault."""
        started = time.perf_counter()
        for item in batch:
            self.metrics.latency.labels(self.name, "queue_wait").observe(started - item.enqueued)
        try:
            logits = await self._forward(batch)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(batch) > 1:
                log.warning("a batch of %d for %r failed (%s); retrying its items one by one", len(batch),
                            self.name, type(exc).__name__)
                for item in batch:
                    if not item.future.done():
                        await self._answer([item])
            elif not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        elapsed = time.perf_counter() - started
        self.metrics.latency.labels(self.name, "inference").observe(elapsed)
        self.metrics.batch_size.labels(self.name).observe(len(batch))
        for item, row in zip(batch, logits, strict=True):
            if not item.future.done():
                item.future.set_result((row, elapsed * 1000))
