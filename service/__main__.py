"""``python -m service``: serve artifacts/ (building the default profile first if asked and missing)."""

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
    from service.drain import SHUTDOWN_GRACE_S, DrainingServer
    from service.settings import ServiceSettings, settings_errors, unknown_environment

    p = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    p.add_argument("--build-if-missing", action="store_true", default=None,
                   help="run `python -m build_models` first when artifacts/manifest.json is missing")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = p.parse_args()
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        from build_models.cli import main as build_main

        argv = ["--artifacts", str(settings.artifacts_dir)]
        if settings.build_profile:
            argv += ["--profile", settings.build_profile]
        code = build_main(argv)
        if code == 2:
            return code
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                            limit_concurrency=settings.max_connections)
    DrainingServer(config, app.state.drain, settings.drain_seconds).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
