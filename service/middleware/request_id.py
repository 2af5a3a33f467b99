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
from fastapi.responses import JSONResponse

access_log = logging.getLogger("vitserve.access")
log = logging.getLogger(__name__)
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")


async def request_id_and_access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    sent = request.headers.get("x-request-id", "")
    request_id = sent if _WELL_FORMED.fullmatch(sent) else uuid.uuid4().hex
    request.state.request_id = request_id
    started = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception as exc:  # noqa: BLE001 - answered here so the 500 keeps its request id and log line
        log.error("unexpected error (request %s)", request_id, exc_info=exc)
        response = JSONResponse({"error": {"code": "internal_error", "message": "internal server error",
                                           "request_id": request_id}}, status_code=500)
    response.headers["X-Request-ID"] = request_id
    access_log.info(json.dumps({
        "request_id": request_id, "method": request.method, "path": request.url.path,
        "status": response.status_code, "ms": round((time.perf_counter() - started) * 1000, 2),
        "client": request.client.host if request.client else None,
    }))
    return response
