"""``python -m service``: serve artifacts/ (building the default profile first if asked and missing)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import uvicorn


def build_artifacts(artifacts_dir: Path, profile: str | None) -> int:
    """``python -m build_models`` in its own process: serving never imports the build (it needs the extra
    ``build``, and training would share this process's cores and memory)."""
    if importlib.util.find_spec("build_models") is None:
        print("--build-if-missing: the build is not installed here (pip install '.[build]' from a checkout)",
              file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "build_models", "--artifacts", str(artifacts_dir)]
    if profile:
        argv += ["--profile", profile]
    return subprocess.run(argv, check=False).returncode


def main() -> int:
    os.environ.setdefault("USE_TF", "0")
    from pydantic import ValidationError

    from service.app import create_app
    from service.server import SHUTDOWN_GRACE_S, DrainingServer
    from service.settings import ServiceSettings, settings_errors, unknown_environment
    from vitcore.logs import configure_logging

    p = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    p.add_argument("--build-if-missing", action="store_true", default=None,
                   help="run `python -m build_models` first when artifacts/manifest.json is missing")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = p.parse_args()
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    configure_logging()
    unknown = unknown_environment(os.environ)
    if unknown:
        logging.getLogger("service").warning("ignoring %s: no such setting (see the README's configuration table)",
                                             ", ".join(unknown))
    try:
        settings = ServiceSettings(**overrides)
    except ValidationError as exc:
        print("\n".join(settings_errors(exc)), file=sys.stderr)
        return 2
    if settings.build_if_missing and not (settings.artifacts_dir / "manifest.json").exists():
        code = build_artifacts(settings.artifacts_dir, settings.build_profile)
        if code == 2:
            return code
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                            limit_concurrency=settings.max_connections)
    DrainingServer(config, app.state.drain, settings.drain_seconds).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
