"""The uvicorn server: on the first SIGTERM it drains admitted requests before shutting down."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from service.middleware.drain import DrainState

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5  # after the drain: uvicorn's wait for open connections before it closes them


class DrainingServer(uvicorn.Server):
    """uvicorn whose first SIGTERM drains before shutting down; SIGINT and a second SIGTERM act as usual."""

    def __init__(self, config: uvicorn.Config, state: DrainState, drain_seconds: float) -> None:
        super().__init__(config)
        self.state, self.drain_seconds = state, drain_seconds
        self.drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.state.draining:
            super().handle_exit(sig, frame)
            return
        self.state.draining = True
        loop = asyncio.get_running_loop()
        loop.call_soon_threadsafe(self._start_drain, loop)

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        self.drain_task = loop.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        log.info("SIGTERM: draining %d request(s) in flight (up to %g s); new requests get 503",
                 self.state.in_flight, self.drain_seconds)
        if not await self.state.wait_idle(self.drain_seconds):
            log.warning("drain timed out with %d request(s) still in flight", self.state.in_flight)
        self.should_exit = True
