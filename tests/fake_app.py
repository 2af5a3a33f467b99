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


def write_fake_artifacts(root: Path) -> Path:
    """A manifest with one variant whose folder holds only its preprocessing config."""
    (root / VARIANT).mkdir(parents=True, exist_ok=True)
    (root / VARIANT / "preprocessor_config.json").write_text(json.dumps({"size": {"height": SIZE, "width": SIZE}}))
    Manifest(root, {"schema_version": 1, "profile": "fake", "label_names": ["cat", "dog"],
                    "variants": {VARIANT: {"status": "ok", "runtime": "fake", "files": []}}}).save()
    return root


@contextmanager
def fake_app(root: Path, **settings: Any) -> Iterator[FastAPI]:
    """The app over fake artifacts; predictors load as FakePredictor while the context is open."""
    options = {"variants": VARIANT, "max_wait_ms": 0.0, "verify_sha256": False, **settings}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service.registry, "load_predictor", _load_fake)
        yield create_app(ServiceSettings(artifacts_dir=write_fake_artifacts(root), **options))


@contextmanager
def fake_client(root: Path, **settings: Any) -> Iterator[TestClient]:
    with fake_app(root, **settings) as app, TestClient(app, raise_server_exceptions=False) as client:
        yield client


def png_bytes(size: tuple[int, int] = (12, 10), color: tuple[int, int, int] = (200, 30, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()
