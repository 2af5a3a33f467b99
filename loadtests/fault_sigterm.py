"""SIGTERM under load: clients keep posting while the service is told to stop."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from loadtests.fault_harness import FaultContext, Service, Tally

CLIENTS, LOAD_BEFORE_S, GRACE_S = 8, 2.0, 0.2
Answer = tuple[float, int | None, str]  # (sent at, status or None when no answer came, the error's name)


class _Load:
    """Closed-loop clients; each records (start time, status or None) and stops once refused."""

    def __init__(self, service: Service, context: FaultContext) -> None:
        self.service, self.context = service, context
        self.answers: list[Answer] = []
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


def tally_answers(answers: list[Answer], sigterm_at: float) -> tuple[Tally, dict[str, list[Answer]]]:
    """Sort answers by when they were sent: well before SIGTERM (must get 200), in the last GRACE_S before it
    (200 or 503: the drain may race them) and after it (200, 503 or refused). A request sent before the signal
    reached a listening server, so no answer to it is a request accepted and lost, inside the grace window too."""
    tally = Tally()
    groups: dict[str, list[Answer]] = {"before": [], "window": [], "after": []}
    for answer in answers:
        sent = answer[0]
        groups["before" if sent < sigterm_at - GRACE_S else "window" if sent < sigterm_at else "after"].append(answer)
    for group, what in (("before", "sent before SIGTERM"), ("window", f"sent within {GRACE_S} s before SIGTERM")):
        for _, status, error in groups[group]:
            if status is None:
                tally.record_lost(f"{error} for a request {what}")
            else:
                tally.record(status, what)
    for _, status, _error in groups["after"]:
        tally.statuses[str(status) if status is not None else "refused (listener closed)"] += 1
        if status is not None and status not in (200, 503):
            tally.unexpected_5xx.append(f"{status} after SIGTERM")
    return tally, groups


def drive_through_sigterm(service: Service, context: FaultContext) -> dict[str, Any]:
    load = _Load(service, context)
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
    tally, groups = tally_answers(load.answers, sigterm_at)
    before = groups["before"]
    return tally.result("sigterm-under-load", {
        "every request sent before SIGTERM gets 200": all(status == 200 for _, status, _ in before) and bool(before),
        "sent within the grace window before SIGTERM: 200 or 503, never lost": all(
            status in (200, 503) for _, status, _ in groups["window"]),
        "after SIGTERM: 200 (admitted), 503 (draining) or refused, never another status": all(
            status in (200, 503, None) for _, status, _ in groups["after"]),
        "readiness answers 503 right after SIGTERM": ready_after == 503,
        "the process exits 0 after draining": code == 0,
    }, exit_code=code, exit_seconds=round(exited_s, 2), requests_before_sigterm=len(before) + len(groups["window"]))
