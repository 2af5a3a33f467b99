"""``python -m service``: serve artifacts/; with --build-if-missing, build them beside the server (each variant
served as soon as it is built) when the folder holds no finished build."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn


def main() -> int:
    os.environ.setdefault("USE_TF", "0")
    from pydantic import ValidationError

    from service.app import create_app
    from service.build_runner import build_installed, build_needed
    from service.server import SHUTDOWN_GRACE_S, DrainingServer
    from service.settings import ServiceSettings, settings_errors, unknown_environment
    from vitcore.logs import configure_logging

    p = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    p.add_argument("--build-if-missing", action="store_true", default=None,
                   help="when artifacts/ holds no finished build: run `python -m build_models` beside the server "
                        "(resuming an interrupted one), serving each variant as soon as it is built")
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
    if settings.build_if_missing and build_needed(settings.artifacts_dir) and not build_installed():
        print("--build-if-missing: the build is not installed here (pip install '.[build]' from a checkout)",
              file=sys.stderr)
        return 2
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                            limit_concurrency=settings.max_connections)
    DrainingServer(config, app.state.drain, settings.drain_seconds).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
