"""The build that ``--build-if-missing`` runs beside the server: ``python -m build_models`` in its own process
(training never shares the event loop), its state read from the process and from ``build-progress.json``."""

from __future__ import annotations

import importlib.util
import logging
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from vitcore.build_progress import progress_summary, read_progress
from vitcore.manifest import MANIFEST_FILE

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0


def build_needed(artifacts_dir: Path) -> bool:
    """No manifest, or one whose build never finished (it was interrupted: the build resumes it)."""
    manifest = artifacts_dir / MANIFEST_FILE
    if not manifest.exists():
        return True
    import json

    try:
        return not json.loads(manifest.read_text()).get("build_history")
    except ValueError:
        return True


def build_installed() -> bool:
    return importlib.util.find_spec("build_models") is not None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the build gets SIGTERM when the server dies, even by SIGKILL (a restart then resumes it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class BuildRunner:
    """One build process: started once, polled by the follower, stopped with the server."""

    def __init__(self, artifacts_dir: Path, profile: str | None, extra_args: str = "") -> None:
        self.artifacts_dir = artifacts_dir
        self.argv = [sys.executable, "-m", "build_models", "--artifacts", str(artifacts_dir)]
        if profile:
            self.argv += ["--profile", profile]
        self.argv += shlex.split(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.start_error: str | None = None

    def start(self) -> None:
        log.info("building beside the server: %s", shlex.join(self.argv))
        try:
            self.process = subprocess.Popen(self.argv, preexec_fn=_die_with_parent)  # noqa: PLW1509
        except OSError as exc:
            self.start_error = f"the build could not start: {exc}"
            log.error("%s", self.start_error)

    @property
    def running(self) -> bool:
        if self.process is None or self.exit_code is not None:
            return False
        code = self.process.poll()
        if code is not None:
            self.exit_code = code
            log.log(logging.INFO if code == 0 else logging.ERROR, "the build exited with code %d", code)
        return code is None

    def status(self) -> dict[str, Any]:
        """What /health/ready, /variants and /build say about the build."""
        running = self.running
        recorded = read_progress(self.artifacts_dir)
        summary = progress_summary(recorded) if recorded and recorded.get("pid") == self._pid() else None
        body: dict[str, Any] = summary or {"state": None, "phase": "starting", "percent": 0.0, "eta_s": None,
                                           "steps": []}
        if running:
            body["state"] = "running"
        elif self.start_error or (self.exit_code not in (None, 0)):
            body["state"] = "failed"
            body["error"] = self.start_error or body.get("error") or \
                f"the build exited with code {self.exit_code} (see the service log)"
        else:
            body["state"] = "done"
        if not running:
            body["eta_s"] = None
        body["exit_code"] = self.exit_code
        body["pid"] = self._pid()
        body["command"] = shlex.join(self.argv)
        return body

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace: what it built stays in the manifest, a restart resumes the rest."""
        if not self.running or self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.exit_code = self.process.returncode

    def _pid(self) -> int | None:
        return self.process.pid if self.process is not None else None
