"""``python -m service``: serve artifacts/ (building the default profile first if asked and missing)."""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn


def main() -> int:
    os.environ.setdefault("USE_TF", "0")
    from service.app import create_app
    from service.settings import ServiceSettings

    p = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    p.add_argument("--build-if-missing", action="store_true", default=None,
                   help="run `python -m build_models` first when artifacts/manifest.json is missing")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = p.parse_args()
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = ServiceSettings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.build_if_missing and not (settings.artifacts_dir / "manifest.json").exists():
        from build_models.cli import main as build_main

        argv = ["--artifacts", str(settings.artifacts_dir)]
        if settings.build_profile:
            argv += ["--profile", settings.build_profile]
        code = build_main(argv)
        if code == 2:
            return code
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
