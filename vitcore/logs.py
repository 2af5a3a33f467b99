"""Logging set up once per entry point: one format; the project's own loggers at INFO."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(own: tuple[str, ...] = ("build_models", "service", "vitcore"), verbose: bool = False) -> None:
    """The project's progress at INFO; third-party loggers (ONNX Runtime's quantizer logs hundreds of INFO
    lines on the root logger) at WARNING unless ``verbose``."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=FORMAT)
    for name in own:
        logging.getLogger(name).setLevel(logging.INFO)
