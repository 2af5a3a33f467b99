"""A finished variant is rebuilt when what built it changed (options it read, its builder's code, a source
variant), and kept otherwise; teacher caches follow the photos they were computed on."""

import dataclasses
import logging
import shutil

import pytest

from build_models.build_keys import ABSENT, RecordedOptions, builder_code_hash, stale_reasons
from build_models.measure.evaluate import TestImages
from build_models.pipeline import variant_step as pipeline
from build_models.profiles import get_profile
from build_models.sources.dataset import make_splits
from build_models.training.teacher import TeacherConfig
from vitcore.catalogue import get_variant
from vitcore.manifest import Manifest
from vitcore.preprocessing import PreprocessConfig


def test_recorded_options_remember_what_was_looked_up_and_what_was_missing():
    options = RecordedOptions({"a": 1, "b": (2, 3), "unused": 4})
    assert options.get("a") == 1 and options["b"] == (2, 3) and "c" not in options and options.get("d", 7) == 7
    assert options.read == {"a": 1, "b": [2, 3], "c": ABSENT, "d": ABSENT}


def test_teacher_cache_key_follows_the_train_photos():
    config = TeacherConfig()
    assert config.cache_key("rows-a") == config.cache_key("rows-a") != config.cache_key("rows-b")
    assert TeacherConfig(resolution=112).cache_key("rows-a") != config.cache_key("rows-a")


@pytest.fixture
def resumable(smoke_artifacts, tmp_path, dataset, monkeypatch):
    """A copy of the smoke build where `plain`'s builder reads one option, and a function that resumes it."""
    copy = tmp_path / "artifacts"
    shutil.copytree(smoke_artifacts, copy)
    built: list[str] = []
    real = get_variant("plain")

    def build(ctx):
        built.append(str(ctx.options.get("plain_note", "none")))
        return real.build(ctx)

    spec = dataclasses.replace(real, builder=build)
    monkeypatch.setattr(pipeline, "get_variant", lambda name: spec if name == "plain" else get_variant(name))
    monkeypatch.setattr("build_models.build_keys.builder_code_hash", lambda s: "code-v1")
    splits = make_splits(dataset.labels, get_profile("smoke").split)
    test = TestImages.decode(dataset, splits.test[:20])
    ctx_args = {"data": dataset, "splits": splits, "preprocess": PreprocessConfig.from_dir(copy / "base"),
                "pixel_cache": {}, "row_cache": {}}
    manifest = Manifest.load(copy)
    manifest.variants["plain"].pop("build_inputs", None)  # as a manifest written before inputs were recorded

    def resume(**options):
        profile = get_profile("smoke").with_overrides(options={**get_profile("smoke").options, **options})
        request = pipeline.BuildRequest(profile=profile, artifacts_dir=copy)
        pipeline.build_one(request, manifest, "plain", test, ctx_args)
        return manifest.variants["plain"]

    return resume, built, spec, manifest


def test_a_resumed_build_rebuilds_only_what_changed_and_says_why(resumable, caplog, monkeypatch):
    resume, built, spec, manifest = resumable
    caplog.set_level(logging.INFO, logger="build_models.pipeline.variant_step")
    first = resume()  # the smoke build recorded no inputs: rebuilt once, now with them
    assert built == ["none"] and first["build_inputs"]["options"] == {"plain_note": ABSENT}
    assert "built before build inputs were recorded" in caplog.text
    resume(val_images=5)  # an option plain's builder never read
    assert built == ["none"]
    entry = resume(plain_note="x")
    assert built == ["none", "x"] and "option plain_note changed from '<absent>' to 'x'" in caplog.text
    assert entry["build_inputs"]["options"] == {"plain_note": "x"}
    monkeypatch.setattr("build_models.build_keys.builder_code_hash", lambda s: "code-v2")
    assert stale_reasons(entry, spec, {"plain_note": "x"}, manifest) == ["its builder's code (test_build_keys.py) "
                                                                         "changed"]
    resume(plain_note="x")
    assert built == ["none", "x", "x"]


def test_a_variant_built_from_another_is_stale_when_that_one_was_rebuilt(smoke_artifacts):
    manifest = Manifest.load(smoke_artifacts)
    spec = get_variant("lite0-int8")
    entry = {"build_inputs": {"builder_code": builder_code_hash(spec), "options": {},
                              "sources": {"distilled-lite0": "an-older-key"}}}
    assert stale_reasons(entry, spec, {}, manifest) == ["distilled-lite0, which it is built from, was rebuilt"]



def test_a_resumed_build_scores_a_variant_on_the_selection_set_without_rebuilding_it(smoke_artifacts, tmp_path,
                                                                                    dataset, caplog):
    """A manifest written before validation scores: resuming scores each variant there, rebuilds none, and a
    variant whose runtime cannot load stays built (just not routable), with a warning."""
    copy = tmp_path / "artifacts"
    shutil.copytree(smoke_artifacts, copy)
    manifest = Manifest.load(copy)
    for entry in manifest.variants.values():
        entry.pop("validation", None)
    splits = make_splits(dataset.labels, get_profile("smoke").split)
    test, validation = TestImages.decode(dataset, splits.test[:20]), TestImages.decode(dataset, splits.val[:30])
    ctx_args = {"data": dataset, "splits": splits, "preprocess": PreprocessConfig.from_dir(copy / "base"),
                "pixel_cache": {}, "row_cache": {}}
    request = pipeline.BuildRequest(profile=get_profile("smoke"), artifacts_dir=copy)
    keys = {name: manifest.variants[name]["build_key"] for name in ("plain", "onnx")}
    for name in ("plain", "onnx"):
        pipeline.build_one(request, manifest, name, test, ctx_args, validation)
    assert {name: manifest.variants[name]["build_key"] for name in keys} == keys  # not rebuilt
    assert manifest.variants["plain"]["validation"]["set_id"] == validation.set_id()
    assert manifest.variants["onnx"]["validation"] == {**manifest.variants["plain"]["validation"], "f1_source": "plain"}
    (copy / "openvino" / "openvino_model.xml").write_text("<not a model/>")  # a runtime that cannot load it
    caplog.set_level(logging.WARNING, logger="build_models.pipeline.variant_step")
    manifest.variants["openvino"]["files"] = [f for f in manifest.variants["openvino"]["files"]
                                              if not f["path"].endswith(".xml")]  # verify passes, load fails
    pipeline.build_one(request, manifest, "openvino", test, ctx_args, validation)
    assert manifest.variants["openvino"]["status"] == "ok" and "validation" not in manifest.variants["openvino"]
    assert "openvino: not scored on the selection set" in caplog.text
