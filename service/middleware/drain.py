"""Graceful drain: on SIGTERM readiness turns 503 and new requests are refused with 503, while the requests
already admitted finish (up to ``drain_seconds``); then uvicorn shuts down and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

ALWAYS_ANSWERED = ("/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/metrics")


class DrainState:
    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0

    async def wait_idle(self, timeout_s: float) -> bool:
        """True when no request is in flight before the timeout."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return not self.in_flight


class DrainMiddleware:
    """Counts requests in flight; while draining, refuses new ones with 503 and Connection: close."""

    def __init__(self, app: ASGIApp, state: DrainState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in ALWAYS_ANSWERED:
            await self.app(scope, receive, send)
            return
        if self.state.draining:
            await _refuse(send, v2=str(scope.get("path", "")).startswith("/v2/"))
            return
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.in_flight -= 1


async def _refuse(send: Send, v2: bool) -> None:
    message = "the service is shutting down; retry on another instance"
    error = message if v2 else {"code": "draining", "message": message}  # the V2 protocol's shape on /v2
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


