"""What the fault scenarios share: a real service process with chosen settings, a tally of answers, and
raw-socket requests (for clients that trickle or vanish)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtests.run import HOST, free_port, wait_ready

DOCUMENTED_5XX = (503, 504)


@dataclass
class FaultContext:
    artifacts: Path
    variant: str
    photos: list[bytes]
    logs: Path


@dataclass
class Tally:
    """Answers of one scenario: statuses, requests accepted but never answered, and undocumented 5xx."""

    statuses: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    unexpected_5xx: list[str] = field(default_factory=list)

    def record(self, status: int, what: str = "") -> int:
        self.statuses[str(status)] += 1
        if status >= 500 and status not in DOCUMENTED_5XX:
            self.unexpected_5xx.append(f"{status} {what}".strip())
        return status

    def record_lost(self, what: str) -> None:
        self.statuses["no answer"] += 1
        self.lost += 1
        self.unexpected_5xx.append(f"no answer: {what}")

    def result(self, scenario: str, checks: dict[str, bool], **figures: Any) -> dict[str, Any]:
        return {"scenario": scenario, "requests": sum(self.statuses.values()), "statuses": dict(self.statuses),
                "lost": self.lost, "unexpected_5xx": self.unexpected_5xx, "checks": checks, **figures}


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]

    def post_image(self, client: httpx.Client, variant: str, data: bytes) -> httpx.Response:
        return client.post(f"{self.url}/predict/{variant}", content=data, headers={"content-type": "image/jpeg"})

    def metric(self, sample: str) -> float:
        """One sample of /metrics, e.g. 'vitserve_worker_restarts_total{variant="plain"}' (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, flags=re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


@contextmanager
def running_service(context: FaultContext, name: str, settings: dict[str, str],
                    artifacts: Path | None = None, wait: bool = True) -> Iterator[Service]:
    """``python -m loadtests.fault_server`` (the real service with the worker-death hook) on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITSERVE_")}
    env.update({"VITSERVE_ARTIFACTS_DIR": str(artifacts or context.artifacts), "VITSERVE_HOST": HOST,
                "VITSERVE_PORT": str(port), "VITSERVE_VARIANTS": context.variant, "USE_TF": "0", **settings})
    context.logs.mkdir(parents=True, exist_ok=True)
    with open(context.logs / f"{name}.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "loadtests.fault_server"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)
        try:
            if wait:
                wait_ready(port, 300, process)
            else:
                _wait_listening(port, process)
            yield Service(f"http://{HOST}:{port}", process)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://{HOST}:{port}/health/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise TimeoutError("the service did not start listening")


def raw_request(url: str, path: str, body: bytes, content_type: str = "image/jpeg") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_status(sock: socket.socket) -> int:
    """The status code of the HTTP response on ``sock`` (raises OSError/ValueError when none comes)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("connection closed before a status line")
        data += chunk
    return int(data.split(b" ", 2)[1])


def v2_pixels_body(shape: list[int], value: float) -> bytes:
    count = 1
    for dim in shape:
        count *= dim
    return json.dumps({"inputs": [{"name": "PIXELS", "shape": shape, "datatype": "FP32",
                                   "data": [value] * count}]}).encode()
