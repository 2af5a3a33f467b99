"""The faults, one function each; every one starts its own real service process and returns its tally."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from loadtests.fault_harness import (
    FaultContext,
    Service,
    Tally,
    connect,
    raw_request,
    read_status,
    running_service,
    v2_pixels_body,
)
from loadtests.fault_server import CRASH_VALUE
from service.batching import CRASH_LIMIT

BATCHING = {"VITSERVE_MAX_BATCH_SIZE": "8", "VITSERVE_MAX_WAIT_MS": "150"}


def _pixels_shape(service: Service, variant: str) -> list[int]:
    metadata = httpx.get(f"{service.url}/v2/models/{variant}", timeout=10).json()
    shape = next(t["shape"] for t in metadata["inputs"] if t["name"] == "PIXELS")
    return [1, *shape[1:]]


def _send(service: Service, tally: Tally, variant: str, data: bytes) -> httpx.Response | None:
    try:
        with httpx.Client(timeout=60) as client:
            response = service.post_image(client, variant, data)
    except httpx.HTTPError as exc:
        tally.record_lost(f"{type(exc).__name__} on /predict/{variant}")
        return None
    tally.record(response.status_code, f"/predict/{variant}")
    return response


def worker_crash(context: FaultContext) -> dict[str, Any]:
    tally, variant = Tally(), context.variant
    with running_service(context, "worker-crash", BATCHING) as service:
        crash_body = v2_pixels_body(_pixels_shape(service, variant), CRASH_VALUE)

        def crash() -> int:
            response = httpx.post(f"{service.url}/v2/models/{variant}/infer", content=crash_body, timeout=60)
            return tally.record(response.status_code, "crash input")

        with ThreadPoolExecutor(8) as pool:
            crashed = pool.submit(crash)
            neighbours = list(pool.map(lambda p: _send(service, tally, variant, p), context.photos[:7]))
        retried = [_send(service, tally, variant, context.photos[i]) for i, r in enumerate(neighbours)
                   if r is not None and r.status_code == 503]
        after = [_send(service, tally, variant, photo) for photo in context.photos[:10]]
        ready_after_one = httpx.get(f"{service.url}/health/ready", timeout=10).status_code
        for _ in range(CRASH_LIMIT):
            crash()
        ready_after_many = httpx.get(f"{service.url}/health/ready", timeout=10).status_code
        restarts = service.metric(f'vitserve_worker_restarts_total{{variant="{variant}"}}')
        alive = service.process.poll() is None
    answered = [r for r in neighbours if r is not None]
    return tally.result("worker-crash", {
        "the request that killed the worker gets 503": crashed.result() == 503,
        "its batch neighbours get 200, or 503 with Retry-After": all(
            r.status_code == 200 or (r.status_code == 503 and "retry-after" in r.headers) for r in answered),
        "their retries and the next 10 requests get 200": all(r is not None and r.status_code == 200
                                                              for r in retried + after),
        "ready after one death": ready_after_one == 200,
        f"not ready after {CRASH_LIMIT} deaths within a minute": ready_after_many == 503,
        "the service stayed alive": alive,
    }, worker_restarts=restarts)


def bad_items_in_a_full_batch(context: FaultContext) -> dict[str, Any]:
    tally, variant, photos = Tally(), context.variant, context.photos[:6]
    bad = {"truncated JPEG": photos[0][: len(photos[0]) // 3], "random bytes": bytes(range(256)) * 40,
           "GIF header only": b"GIF89a" + b"\x00" * 64}
    with running_service(context, "bad-items", BATCHING) as service:
        alone = [_send(service, tally, variant, p) for p in photos]
        before = service.metric(f'vitserve_batch_size_count{{variant="{variant}"}}')
        with ThreadPoolExecutor(len(photos) + len(bad)) as pool:
            together = list(pool.map(lambda p: _send(service, tally, variant, p), photos + list(bad.values())))
        batches = service.metric(f'vitserve_batch_size_count{{variant="{variant}"}}') - before
        alive = service.process.poll() is None
    good, broken = together[: len(photos)], together[len(photos):]
    same = all(a is not None and t is not None and t.status_code == 200
               and max(abs(t.json()["probabilities"][k] - v) for k, v in a.json()["probabilities"].items()) < 1e-5
               for a, t in zip(alone, good, strict=True))
    return tally.result("bad-items-in-a-full-batch", {
        "each bad item gets a 4xx": all(r is not None and 400 <= r.status_code < 500 for r in broken),
        "the good items beside them get 200 and their own answers": same,
        "the good items shared forward passes": 0 < batches < len(photos),
        "the service stayed alive": alive,
    }, bad_item_statuses={k: r.status_code if r else None for k, r in zip(bad, broken, strict=True)})


def _corrupt_copy(artifacts: Path, broken: str, into: Path) -> None:
    """``into``: links to every artifact folder but ``broken``, which is copied with one byte flipped."""
    for entry in artifacts.iterdir():
        if entry.name != broken:
            (into / entry.name).symlink_to(entry.resolve())
    shutil.copytree(artifacts / broken, into / broken)
    target = max((p for p in (into / broken).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))


def corrupt_artifact(context: FaultContext) -> dict[str, Any]:
    tally, variant = Tally(), context.variant
    broken = next(n for n in ("onnx", "openvino", "dynamic-quant") if (context.artifacts / n).is_dir())
    with tempfile.TemporaryDirectory() as folder:
        _corrupt_copy(context.artifacts, broken, Path(folder))
        with running_service(context, "corrupt-artifact", {"VITSERVE_VARIANTS": f"{variant},{broken}"},
                             artifacts=Path(folder), wait=False) as service:
            ready = httpx.get(f"{service.url}/health/ready", timeout=10)
            refused = _send(service, tally, broken, context.photos[0])
            served = _send(service, tally, variant, context.photos[0])
            alive = service.process.poll() is None
    return tally.result("corrupt-artifact", {
        "readiness is 503 and names the broken variant": ready.status_code == 503
        and broken in ready.json().get("missing_required", []),
        "the broken variant answers 503 variant_unavailable": refused is not None and refused.status_code == 503
        and refused.json()["error"]["code"] == "variant_unavailable",
        "no path or exception text reaches the client": folder not in ready.text
        and (refused is None or folder not in refused.text),
        "the other variant serves": served is not None and served.status_code == 200,
        "the service stayed alive": alive,
    }, broken_variant=broken)


def _trickle(service: Service, variant: str, body: bytes, pause_s: float, pieces: int) -> int:
    with connect(service.url) as sock:
        message = raw_request(service.url, f"/predict/{variant}", body)
        head_end = message.index(b"\r\n\r\n") + 4
        sock.sendall(message[:head_end])
        step = max(1, len(body) // pieces)
        try:
            for start in range(0, len(body), step):
                time.sleep(pause_s)
                sock.sendall(body[start:start + step])
        except OSError:
            pass  # the server gave up on the body and answered
        return read_status(sock)


def slow_client(context: FaultContext) -> dict[str, Any]:
    tally, variant, photo = Tally(), context.variant, context.photos[0]
    settings = {"VITSERVE_BODY_TIMEOUT_S": "2", "VITSERVE_QUEUE_SIZE": "4"}
    with running_service(context, "slow-client", settings) as service:
        with ThreadPoolExecutor(8) as pool:
            stuck = [pool.submit(_trickle, service, variant, photo, 0.5, 40) for _ in range(6)]
            time.sleep(0.5)
            started = time.perf_counter()
            others = [_send(service, tally, variant, p) for p in context.photos[:10]]
            others_s = time.perf_counter() - started
            stuck_statuses = [tally.record(f.result(), "trickled body") for f in stuck]
        steady = tally.record(_trickle(service, variant, photo, 0.1, 5), "slow but in time")
        alive = service.process.poll() is None
    return tally.result("slow-client", {
        "trickled bodies get 408 after the body timeout": stuck_statuses == [408] * len(stuck),
        "6 trickling clients hold no queue slots (queue 4): others get 200": all(
            r is not None and r.status_code == 200 for r in others),
        "a slow body within the timeout gets 200": steady == 200,
        "the service stayed alive": alive,
    }, others_seconds=round(others_s, 2))


def _vanish(service: Service, variant: str, body: bytes, midway: bool) -> None:
    with connect(service.url) as sock:
        message = raw_request(service.url, f"/predict/{variant}", body)
        sock.sendall(message[: len(message) // 2] if midway else message)


def client_disconnects(context: FaultContext) -> dict[str, Any]:
    tally, variant = Tally(), context.variant
    with running_service(context, "client-disconnects", BATCHING) as service:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: _vanish(service, variant, context.photos[i % 8], i % 2 == 0), range(32)))
        time.sleep(1.0)
        after = [_send(service, tally, variant, p) for p in context.photos[:8]]
        errors = service.metric(f'vitserve_requests_total{{variant="{variant}",status="500"}}')
        live = httpx.get(f"{service.url}/health/live", timeout=10).status_code
        alive = service.process.poll() is None
    return tally.result("client-disconnects", {
        "32 vanished clients leave no 500 behind": errors == 0,
        "the next requests get 200": all(r is not None and r.status_code == 200 for r in after),
        "the service stayed alive": alive and live == 200,
    }, vanished=32)


def sigterm_under_load(context: FaultContext) -> dict[str, Any]:
    from loadtests.fault_sigterm import drive_through_sigterm

    with running_service(context, "sigterm-under-load", {"VITSERVE_DRAIN_SECONDS": "10", **BATCHING}) as service:
        return drive_through_sigterm(service, context)

