"""SIGTERM under load: clients keep posting while the service is told to stop."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from loadtests.fault_harness import FaultContext, Service, Tally

CLIENTS, LOAD_BEFORE_S, GRACE_S = 8, 2.0, 0.2


class _Load:
    """Closed-loop clients; each records (start time, status or None) and stops once refused."""

    def __init__(self, service: Service, context: FaultContext) -> None:
        self.service, self.context = service, context
        self.answers: list[tuple[float, int | None, str]] = []
        self.lock = threading.Lock()

    def client(self, index: int) -> None:
        with httpx.Client(timeout=60) as client:
            while True:
                started = time.monotonic()
                try:
                    status: int | None = self.service.post_image(
                        client, self.context.variant, self.context.photos[index % len(self.context.photos)]).status_code
                    error = ""
                except httpx.HTTPError as exc:
                    status, error = None, type(exc).__name__
                with self.lock:
                    self.answers.append((started, status, error))
                if status != 200:
                    return


def _first_readiness(service: Service) -> int | None:
    try:
        return httpx.get(f"{service.url}/health/ready", timeout=5).status_code
    except httpx.HTTPError:
        return None


def drive_through_sigterm(service: Service, context: FaultContext) -> dict[str, Any]:
    load, tally = _Load(service, context), Tally()
    threads = [threading.Thread(target=load.client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_BEFORE_S)
    sigterm_at = time.monotonic()
    service.terminate()
    ready_after = _first_readiness(service)
    code = service.process.wait(timeout=60)
    exited_s = time.monotonic() - sigterm_at
    for thread in threads:
        thread.join(timeout=60)
    before = [(s, status, e) for s, status, e in load.answers if s < sigterm_at - GRACE_S]
    after = [(s, status, e) for s, status, e in load.answers if s >= sigterm_at - GRACE_S]
    for _, status, error in before:
        if status is None:
            tally.record_lost(f"{error} for a request sent before SIGTERM")
        else:
            tally.record(status, "sent before SIGTERM")
    for _, status, _error in after:
        tally.statuses[str(status) if status is not None else "refused (listener closed)"] += 1
        if status is not None and status not in (200, 503):
            tally.unexpected_5xx.append(f"{status} after SIGTERM")
    return tally.result("sigterm-under-load", {
        "every request sent before SIGTERM gets 200": all(status == 200 for _, status, _ in before) and bool(before),
        "after SIGTERM: 200 (admitted), 503 (draining) or refused, never another status": all(
            status in (200, 503, None) for _, status, _ in after),
        "readiness answers 503 right after SIGTERM": ready_after == 503,
        "the process exits 0 after draining": code == 0,
    }, exit_code=code, exit_seconds=round(exited_s, 2), requests_before_sigterm=len(before))
