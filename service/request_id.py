"""A request id on every request (X-Request-ID, taken from the client when well-formed) and a
structured JSON access log line per request."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

access_log = logging.getLogger("vitserve.access")
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")


async def request_id_and_access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    sent = request.headers.get("x-request-id", "")
    request_id = sent if _WELL_FORMED.fullmatch(sent) else uuid.uuid4().hex
    request.state.request_id = request_id
    started = time.perf_counter()
    response = await call_next(request)
    response.headers["X-Request-ID"] = request_id
    access_log.info(json.dumps({
        "request_id": request_id, "method": request.method, "path": request.url.path,
        "status": response.status_code, "ms": round((time.perf_counter() - started) * 1000, 2),
        "client": request.client.host if request.client else None,
    }))
    return response
