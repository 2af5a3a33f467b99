"""A real ``python -m service`` (uvicorn) process on a free loopback port, for tests that meet the service as
users do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadtests.run import HOST, free_port, wait_ready


@contextmanager
def serve(artifacts: Path, log_file: Path, variants: str = "all", settings: dict[str, str] | None = None,
          ) -> Iterator[str]:
    """``python -m service`` on a free loopback port (``settings``: more VITSERVE_* variables); yields its base
    URL and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "VITSERVE_ARTIFACTS_DIR": str(artifacts), "VITSERVE_HOST": HOST,
           "VITSERVE_PORT": str(port), "VITSERVE_VARIANTS": variants, "USE_TF": "0", **(settings or {})}
    with open(log_file, "wb") as handle:
        service = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=handle)
        try:
            wait_ready(port, 300, service)
            yield f"http://{HOST}:{port}"
        finally:
            service.terminate()
            service.wait(timeout=30)
