"""The service's real HTTP plumbing (routers, error mapping, body limit, batching) over a fake predictor."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

import service.registry
from service.app import create_app
from service.settings import ServiceSettings
from vitcore.backends.base import Predictor
from vitcore.manifest import Manifest
from vitcore.threads import ThreadSettings

VARIANT = "plain"
SIZE = 8


class FakePredictor(Predictor):
    """Logits from the batch's mean pixel: cheap, deterministic, and shaped like a real classifier's."""

    def _load(self) -> None:
        pass

    def forward(self, batch: np.ndarray) -> np.ndarray:
        mean = batch.mean(axis=(1, 2, 3))
        return np.stack([mean, -mean], axis=1).astype(np.float32)


def _load_fake(manifest: Manifest, name: str, threads: ThreadSettings, verify: bool = True) -> Predictor:
    predictor = FakePredictor(manifest.root / name, threads)
    predictor.load()
    return predictor


ROUTED = ("plain", "onnx")  # with ``routed``: both serve, with figures for auto and a cascade onnx -> plain


def _routed_entries() -> dict[str, Any]:
    """Measured F1 and latency for both variants, and the cascade between them, as a build records them."""
    figures = {"plain": (0.9, 20.0), "onnx": (0.8, 5.0)}
    variants = {name: {"status": "ok", "runtime": "fake", "files": [], "metrics": {"f1": f1, "f1_ci95": [f1 - 0.05,
                f1 + 0.05]}, "size_mb": 1.0} for name, (f1, _) in figures.items()}
    latency = {name: {"end_to_end": {"mean_ms": ms, "p50_ms": ms}, "model": {"mean_ms": ms / 2, "p50_ms": ms / 2}}
               for name, (_, ms) in figures.items()}
    cascade = {"first": "onnx", "then": "plain", "threshold": 0.6, "temperatures": {"onnx": 1.0, "plain": 1.0},
               "test": {"f1": 0.88, "f1_ci95": [0.83, 0.93], "mean_ms": 9.0, "escalation_rate": 0.2}}
    return {"variants": variants, "latency": {"results": latency}, "cascade": cascade}


def write_fake_artifacts(root: Path, routed: bool = False, manifest_extra: dict[str, Any] | None = None) -> Path:
    """A manifest with one variant whose folder holds only its preprocessing config (``routed``: two, with the
    figures /predict/auto and /predict/cascade route on; ``manifest_extra``: more top-level manifest keys)."""
    data: dict[str, Any] = {"schema_version": 1, "profile": "fake", "label_names": ["cat", "dog"],
                            "variants": {VARIANT: {"status": "ok", "runtime": "fake", "files": []}}}
    if routed:
        data.update(_routed_entries())
    data.update(manifest_extra or {})
    for name in data["variants"]:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "preprocessor_config.json").write_text(json.dumps({"size": {"height": SIZE, "width": SIZE}}))
    Manifest(root, data).save()
    return root


@contextmanager
def fake_app(root: Path, routed: bool = False, manifest_extra: dict[str, Any] | None = None,
             **settings: Any) -> Iterator[FastAPI]:
    """The app over fake artifacts; predictors load as FakePredictor while the context is open."""
    options = {"variants": ",".join(ROUTED) if routed else VARIANT, "max_wait_ms": 0.0, "verify_sha256": False,
               **settings}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service.registry, "load_predictor", _load_fake)
        yield create_app(ServiceSettings(artifacts_dir=write_fake_artifacts(root, routed, manifest_extra), **options))


@contextmanager
def fake_client(root: Path, routed: bool = False, manifest_extra: dict[str, Any] | None = None,
                **settings: Any) -> Iterator[TestClient]:
    with (fake_app(root, routed, manifest_extra, **settings) as app,
          TestClient(app, raise_server_exceptions=False) as client):
        yield client


def png_bytes(size: tuple[int, int] = (12, 10), color: tuple[int, int, int] = (200, 30, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()
