import json
import shutil

import pytest

from vitcore.errors import ArtifactIntegrityError, VariantUnavailableError
from vitcore.loading import load_predictor
from vitcore.manifest import Manifest, sha256_of
from vitcore.threads import ThreadSettings


def test_manifest_lists_every_file_with_its_sha256(smoke_artifacts):
    manifest = Manifest.load(smoke_artifacts)
    for name, entry in manifest.variants.items():
        assert entry["files"], name
        for item in entry["files"]:
            path = smoke_artifacts / item["path"]
            assert path.stat().st_size == item["bytes"]
            assert sha256_of(path) == item["sha256"]
        assert not [f for f in entry["files"] if f["path"].endswith((".bin", ".pt", ".pth", ".pkl"))
                    and entry["runtime"] == "pytorch"], "PyTorch weights must be safetensors"
        manifest.verify(name)


def test_manifest_records_split_and_build_info(smoke_artifacts):
    data = json.loads((smoke_artifacts / "manifest.json").read_text())
    split = data["dataset"]["split"]
    ids = json.loads((smoke_artifacts / "split.json").read_text())
    assert split["test"]["count"] == len(ids["test"])
    assert data["base_model"]["source"] == "scratch:tiny"
    assert data["base_model"]["training"]["config"]["lr"] > 0
    assert data["packages"]["torch"].startswith("2.13")


def test_tampered_artifact_is_detected_and_unavailable(smoke_artifacts, tmp_path):
    copy = tmp_path / "artifacts"
    shutil.copytree(smoke_artifacts, copy)
    weights = next(p for p in (copy / "plain").iterdir() if p.suffix == ".safetensors")
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    manifest = Manifest.load(copy)
    with pytest.raises(ArtifactIntegrityError):
        manifest.verify("plain")
    with pytest.raises(VariantUnavailableError):
        load_predictor(manifest, "plain", ThreadSettings())


def test_untrained_base_records_no_scores(tmp_path):
    """A random-init base that is never trained (vit-base's setting) gets no F1 in the manifest or report:
    its agreement with the labels says nothing about a compression method."""
    from build_models.pipeline.build import BuildRequest, run_build
    from build_models.profiles import get_profile
    from tests.conftest import DATASET

    profile = get_profile("smoke").with_overrides(dataset=str(DATASET), train_epochs=0.0, limit=200)
    manifest = run_build(BuildRequest(profile=profile, artifacts_dir=tmp_path, variants="plain,onnx"))
    for name in ("plain", "onnx"):
        metrics = manifest.variants[name]["metrics"]
        assert metrics["f1"] is None and metrics["accuracy"] is None and metrics["applicable"] is False
        assert metrics["count"] == 50
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["f1_applicable"] is False and {row["f1"] for row in report["rows"]} == {None}
