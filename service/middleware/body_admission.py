"""Admission of request bodies before they are read, against the process-wide byte budget.

A prediction request's declared ``Content-Length`` (times ``BODY_COPIES``, the copies a body makes while it
is parsed and decoded) is taken from the budget before the app reads a byte of it; past the budget the
request gets 503 with Retry-After and its body is never read. A chunked body (no length) is counted as it
arrives and refused with 503 when the budget runs out mid-stream. The bytes are held until the request
has been answered; the preprocessed inputs are admitted on top, per variant, in ``service.admission``.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.batching import ByteBudget, QueueFullError
from service.http_errors import BodyOverBudgetError, error_body
from service.settings import BODY_COPIES


def admitted_path(scope: Scope) -> bool:
    """The requests whose bodies become model inputs: POST /predict/* and POST /v2/models/.../infer."""
    path = str(scope.get("path", ""))
    return scope.get("method") == "POST" and (
        path.startswith("/predict/") or (path.startswith("/v2/models/") and path.endswith("/infer")))


class BodyAdmissionMiddleware:
    def __init__(self, app: ASGIApp, budget: ByteBudget) -> None:
        self.app, self.budget = app, budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not admitted_path(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        charged = 0
        if declared is not None and declared.isdigit():
            try:
                self.budget.take(int(declared) * BODY_COPIES)
            except QueueFullError as exc:
                await _refuse(send, str(exc), v2=str(scope.get("path", "")).startswith("/v2/"))
                return
            charged = int(declared) * BODY_COPIES
        received = 0

        async def counted_receive() -> Message:
            nonlocal charged, received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received * BODY_COPIES > charged:  # chunked, or more than declared
                    try:
                        self.budget.take(received * BODY_COPIES - charged)
                    except QueueFullError as exc:
                        raise BodyOverBudgetError(str(exc)) from None
                    charged = received * BODY_COPIES
            return message

        try:
            await self.app(scope, counted_receive, send)
        finally:
            self.budget.give(charged)


async def _refuse(send: Send, message: str, v2: bool) -> None:
    body = json.dumps({"error": message} if v2 else error_body("queue_full", message)).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
