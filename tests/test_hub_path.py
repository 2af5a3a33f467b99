"""The hub code path end to end, with local ``save_pretrained`` checkpoints standing in for hub ids.

``from_pretrained`` on a folder is the same code that downloads from the hub, so a build from a
local checkpoint runs every variant, the report and serving as a hub build would.
"""

import logging
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForImageClassification

from build_models.pipeline.build import BuildRequest, run_build
from build_models.profiles import get_profile
from build_models.sources.base_model import SCRATCH_PRESETS, label_maps
from build_models.variants.distilled_resnet18 import RESNET18
from service.app import create_app
from service.settings import ServiceSettings
from tests.conftest import DATASET
from vitcore.catalogue import list_variants, resolve_selection
from vitcore.manifest import Manifest
from vitcore.preprocessing import PreprocessConfig


def _vit_checkpoint(folder: Path, labels: list[str]) -> Path:
    torch.manual_seed(1)
    ViTForImageClassification(ViTConfig(**SCRATCH_PRESETS["tiny"], **label_maps(labels))).save_pretrained(str(folder))
    PreprocessConfig(32, 32).save(folder)
    return folder


def _resnet_checkpoint(folder: Path) -> Path:
    torch.manual_seed(2)
    config = ResNetConfig(**RESNET18, **label_maps([f"class{i}" for i in range(10)]))
    ResNetForImageClassification(config).save_pretrained(str(folder))
    return folder


def _build(root: Path, base: Path, student_base: Path | None = None, variants: str = "all") -> Manifest:
    # Plumbing, not quality: fewer images and epochs than the shared smoke build.
    smoke = get_profile("smoke")
    options = {**smoke.options, "lite0_images": 120, "lite0_resolution": 64}
    if student_base is not None:
        options["resnet18_base"] = str(student_base)
    profile = smoke.with_overrides(dataset=str(DATASET), base_model=str(base), limit=400, train_epochs=2.0,
                                   options=options)
    manifest = run_build(BuildRequest(profile=profile, artifacts_dir=root, variants=variants))
    failed = {n: e.get("error") for n, e in manifest.variants.items() if e.get("status") != "ok"}
    assert not failed, failed
    assert set(manifest.variants) == set(resolve_selection(variants))
    return manifest


def _serves_every_variant(root: Path, jpeg: bytes) -> None:
    with TestClient(create_app(ServiceSettings(artifacts_dir=root))) as client:
        assert client.get("/health/ready").status_code == 200
        for name in Manifest.load(root).variants:
            response = client.post(f"/predict/{name}", content=jpeg, headers={"content-type": "image/jpeg"})
            assert response.status_code == 200, (name, response.text)
            assert response.json()["label"] in ("cat", "dog")


@pytest.mark.tensorflow
def test_checkpoint_with_other_labels_is_fine_tuned_end_to_end(tmp_path, test_split_jpegs):
    base = _vit_checkpoint(tmp_path / "vit-3-labels", ["tench", "goldfish", "shark"])
    manifest = _build(tmp_path / "artifacts", base, student_base=_resnet_checkpoint(tmp_path / "resnet"))
    training = manifest.data["base_model"]["training"]
    assert training["recipe"] == "finetune" and training["steps"] > 0
    assert "head replaced with cat/dog" in training["weights"]
    assert "local checkpoint" in manifest.variants["distilled-resnet18"]["build"]["init"]
    report = (tmp_path / "artifacts" / "report.md").read_text()
    assert "head replaced with cat/dog; finetune" in report and "n/a (random init)" not in report
    _serves_every_variant(tmp_path / "artifacts", test_split_jpegs[0][1])


@pytest.mark.tensorflow
def test_checkpoint_that_is_already_cat_dog_is_used_as_is(tmp_path, test_split_jpegs):
    base = _vit_checkpoint(tmp_path / "vit-cat-dog", ["cat", "dog"])  # every variant: the test above
    manifest = _build(tmp_path / "artifacts", base, variants="plain,dynamic-quant,onnx,openvino-int8,distilled-lite0")
    training = manifest.data["base_model"]["training"]
    assert training["recipe"] == "none" and "used as is" in training["reason"]
    assert "teacher" not in manifest.data["base_model"]
    saved = ViTForImageClassification.from_pretrained(str(tmp_path / "artifacts" / "base"))
    original = ViTForImageClassification.from_pretrained(str(base))
    for a, b in zip(saved.state_dict().values(), original.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    report = (tmp_path / "artifacts" / "report.md").read_text()
    assert "pretrained cat/dog classifier (local checkpoint" in report and "not trained" in report
    assert "n/a (random init)" not in report
    _serves_every_variant(tmp_path / "artifacts", test_split_jpegs[0][1])


def test_seed_profile_students_cost_one_teacher_pass_per_photo(tmp_path, caplog):
    """The seed profile's student path with stand-ins for google/vit-base-patch16-224 and microsoft/resnet-18: the
    ViT runs once on each distillation photo, and the second student reuses the first one's cached logits."""
    seed = get_profile("seed")
    base = _vit_checkpoint(tmp_path / "vit-cat-dog", ["cat", "dog"])
    options = {**seed.options, "resnet18_base": str(_resnet_checkpoint(tmp_path / "resnet")), "distill_images": 120,
               "lite0_images": 120, "distill_resolution": 64, "lite0_resolution": 64, "distill_epochs": 1.0}
    profile = seed.with_overrides(dataset=str(DATASET), base_model=str(base), limit=300, options=options,
                                  latency_runs=3)
    with caplog.at_level(logging.INFO, logger="build_models"):
        manifest = run_build(BuildRequest(profile=profile, artifacts_dir=tmp_path / "artifacts",
                                          variants="plain,distilled-resnet18,distilled-lite0"))
    failed = {n: e.get("error") for n, e in manifest.variants.items() if e.get("status") != "ok"}
    assert not failed, failed
    resnet = manifest.variants["distilled-resnet18"]["build"]["distillation"]
    lite0 = manifest.variants["distilled-lite0"]["build"]["distillation"]
    assert resnet["images"] == lite0["images"] == 120 and resnet["resolution"] == 64
    assert resnet["teacher_passes_per_image"] == 1 and not resnet["teacher_logits"]["reused"]
    assert lite0["teacher_passes_per_image"] == 0 and lite0["teacher_logits"]["reused"]
    assert "teacher: one pass over 120 images" in caplog.text
    assert "local checkpoint" in manifest.variants["distilled-resnet18"]["build"]["init"]
    report = (tmp_path / "artifacts" / "report.md").read_text()
    assert "## Students against the ViT they learned from" in report and "| distilled-lite0 |" in report


def test_where_the_hub_answers_the_default_fine_tunes_the_seeds_base_and_fine_tune_is_asked_for(monkeypatch):
    import build_models.cli as cli
    import build_models.profiles as profiles
    from build_models.profiles import HUB_BASE_MODEL, HUB_LEFT_OUT

    monkeypatch.setattr(profiles, "hub_reachable", lambda: True)
    chosen: list[str] = []

    def run_build(request):  # the choice is what is tested here, not a ViT-B/16 build
        chosen.append((request.profile.name, request.variants))
        return Manifest(root=request.artifacts_dir, data={"variants": {}})

    monkeypatch.setattr("build_models.pipeline.build.run_build", run_build)
    assert profiles.default_profile_name() == "hub"
    hub = get_profile("hub")
    assert hub.base_model == HUB_BASE_MODEL and hub.partial is not None and hub.partial.trainable_blocks == 2
    assert cli.main(["--artifacts", "/tmp/unused"]) == 0
    assert cli.main(["--fine-tune", "--artifacts", "/tmp/unused"]) == 0
    assert cli.main(["--variants", "all", "--artifacts", "/tmp/unused"]) == 0
    assert chosen == [("hub", hub.variants), ("seed", "all"), ("hub", "all")]
    assert set(resolve_selection(hub.variants)) == set(list_variants()) - set(HUB_LEFT_OUT)
    assert get_profile("seed").base_model == "google/vit-base-patch16-224"
    with pytest.raises(SystemExit):
        cli.main(["--fine-tune", "--profile", "offline"])


def _pretrained_imagenet_stand_in(folder: Path) -> Path:
    """A pretrained ViT with a 1,000-class head, saved as a hub checkpoint is: the DINOv2-small encoder at 112 px
    stands in for google/vit-base-patch16-224 (which cannot be downloaded here)."""
    from build_models.sources import dinov2

    model = dinov2.load_classifier(label_maps([f"imagenet class {i}" for i in range(1000)]), seed=3, image_size=112)
    model.save_pretrained(str(folder))
    PreprocessConfig(112, 112, image_mean=dinov2.IMAGE_MEAN, image_std=dinov2.IMAGE_STD).save(folder)
    return folder


def test_the_hub_profiles_recipe_fine_tunes_a_pretrained_checkpoints_last_blocks_held_out(tmp_path):
    """The hub default's own recipe (head replaced, last 2 blocks fine-tuned on cached inputs to them) on a local
    stand-in for its base: trained here, so its F1 is held out, and it separates real cats from dogs."""
    from dataclasses import replace

    hub = get_profile("hub")
    assert hub.partial is not None
    profile = hub.with_overrides(
        dataset=str(DATASET), base_model=str(_pretrained_imagenet_stand_in(tmp_path / "vit-base-stand-in")),
        limit=500, eval_limit=None, lossless_eval_limit=None, latency_runs=3,
        partial=replace(hub.partial, train_images=None, val_images=60, epochs=3.0, eval_every_steps=1000))
    manifest = run_build(BuildRequest(profile=profile, artifacts_dir=tmp_path / "artifacts", variants="plain"))
    base = manifest.data["base_model"]
    assert base["training"]["recipe"] == "last 2 blocks fine-tuned on cached inputs", base["training"]
    assert "evaluation_overlap" not in base and manifest.variants["plain"]["metrics"].get("held_out", True)
    assert manifest.variants["plain"]["metrics"]["f1"] >= 0.75, manifest.variants["plain"]["metrics"]  # chance: 0.5


def test_a_known_checkpoint_records_its_provenance(tmp_path, monkeypatch):
    from build_models.sources import base_model

    folder = _vit_checkpoint(tmp_path / "stand-in", ["cat", "dog"])
    card = {**base_model.KNOWN_CHECKPOINTS["nateraw/vit-base-cats-vs-dogs"]}
    monkeypatch.setitem(base_model.KNOWN_CHECKPOINTS, str(folder), card)
    loaded = base_model.load_base_model(base_model.BaseModelSource.parse(str(folder)), ["cat", "dog"], seed=0)
    assert loaded.needs_training is False and loaded.provenance == card
    assert card["card_accuracy"].startswith("0.9935") and card["fine_tuned_on"] == "microsoft/cats_vs_dogs"
