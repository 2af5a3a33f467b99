"""Contract and quality tests over the variant registry, on the smoke build."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from build_models.measure.evaluate import read_predictions
from build_models.pipeline import variant_step as pipeline
from vitcore.catalogue import get_variant, list_variants
from vitcore.loading import load_predictor
from vitcore.manifest import Manifest
from vitcore.preprocessing import PreprocessConfig, decode_image
from vitcore.threads import ThreadSettings

STUDY_VARIANTS = {"plain", "dynamic-quant", "pruned-unstructured", "pruned-structured", "pruned-structured-40",
                  "transformers-pipeline",
                  "optimum-pipeline", "ort-onnx", "onnx", "openvino", "tf-clustered", "distilled-resnet18"}


@pytest.fixture(scope="module")
def manifest(smoke_artifacts):
    return Manifest.load(smoke_artifacts)


@pytest.fixture(scope="module")
def images(test_split_jpegs):
    return [decode_image(jpeg) for _, jpeg in test_split_jpegs[:8]]


def test_registry_has_every_study_variant():
    assert set(list_variants()) >= STUDY_VARIANTS
    for name in list_variants():
        spec = get_variant(name)
        assert spec.runtime in {"pytorch", "onnxruntime", "openvino", "tensorflow"}


@pytest.mark.parametrize("name", list_variants())
def test_variant_contract(manifest, images, name):
    predictor = load_predictor(manifest, name, ThreadSettings())
    probabilities = predictor.predict_images(images)
    assert probabilities.shape == (len(images), 2)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    logits = predictor.forward(predictor.preprocess(images))
    assert logits.shape == (len(images), 2)


@pytest.mark.parametrize("name", [n for n in list_variants() if get_variant(n).lossless and n != "plain"])
def test_lossless_variants_agree_with_plain(smoke_artifacts, name):
    _, plain = read_predictions(smoke_artifacts / "eval" / "plain.json")
    _, other = read_predictions(smoke_artifacts / "eval" / f"{name}.json")
    np.testing.assert_array_equal(other.argmax(1), plain.argmax(1))
    assert np.abs(other - plain).max() < 1e-3


def test_unstructured_pruning_sparsity_and_storage(manifest):
    build = manifest.variants["pruned-unstructured"]["build"]
    assert build["sparsity"] == pytest.approx(0.10, abs=0.002)
    assert build["stored_weights_mb"] < build["dense_weights_mb"]
    model = load_predictor(manifest, "pruned-unstructured", ThreadSettings()).model
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            assert (module.weight == 0).float().mean() >= 0.099


def test_structured_pruning_shrinks_the_matrices(manifest):
    plain = load_predictor(manifest, "plain", ThreadSettings()).model
    pruned = load_predictor(manifest, "pruned-structured", ThreadSettings()).model
    build = manifest.variants["pruned-structured"]["build"]
    width = plain.config.intermediate_size
    assert pruned.config.intermediate_size == width - width // 10 == build["mlp_width"]
    for layer in pruned.vit.encoder.layer:
        assert layer.intermediate.dense.weight.shape[0] == build["mlp_width"]
        assert layer.output.dense.weight.shape[1] == build["mlp_width"]
    removed = sum(len(v) for v in build["heads_removed"].values())
    heads = sum(layer.attention.attention.num_attention_heads for layer in pruned.vit.encoder.layer)
    assert heads == build["heads_before"] - removed
    plain_parameters = manifest.variants["plain"]["build"]["parameters"]
    assert sum(p.numel() for p in pruned.parameters()) == build["parameters"] < plain_parameters


def test_pruning_40_percent_removes_what_was_asked_in_parameters_and_macs(manifest):
    """The heads and MLP width asked for are gone, and the counts follow exactly: parameters from the shapes, MACs
    counted on the network as served equal the analytic ViT count for its config."""
    from transformers import AutoConfig

    from build_models.measure.flops import vit_flops
    from build_models.measure.limit import count_macs

    plain = load_predictor(manifest, "plain", ThreadSettings())
    pruned = load_predictor(manifest, "pruned-structured-40", ThreadSettings())
    build = manifest.variants["pruned-structured-40"]["build"]
    config = plain.model.config
    heads = config.num_attention_heads * config.num_hidden_layers
    removed = sum(len(v) for v in build["heads_removed"].values())
    assert removed == round(0.4 * heads) and build["amount"] == {"heads": 0.4, "mlp": 0.4}
    assert all(len(v) < config.num_attention_heads for v in build["heads_removed"].values())
    width = config.intermediate_size - int(0.4 * config.intermediate_size)
    assert pruned.model.config.intermediate_size == build["mlp_width"] == width
    d, head = config.hidden_size, config.hidden_size // config.num_attention_heads
    # a head: its q, k, v rows with their biases and its columns of the output projection; a neuron: fc1's row
    # with its bias and fc2's column
    expected_removed = removed * (4 * head * d + 3 * head) + config.num_hidden_layers * (
        (config.intermediate_size - width) * (2 * d + 1))
    plain_parameters = manifest.variants["plain"]["build"]["parameters"]
    counted = sum(p.numel() for p in pruned.model.parameters())
    assert build["parameters"] == plain_parameters - expected_removed == counted
    pruned_config = AutoConfig.from_pretrained(str(manifest.root / "pruned-structured-40"))
    assert count_macs(pruned) == vit_flops(pruned_config) / 2 < count_macs(plain) == vit_flops(config) / 2


def test_dynamic_quant_reloads_the_stored_int8_weights(manifest, images, smoke_artifacts):
    from transformers import AutoModelForImageClassification

    from build_models.variants.dynamic_quant import quantize

    fresh = quantize(AutoModelForImageClassification.from_pretrained(str(smoke_artifacts / "base")).eval())
    predictor = load_predictor(manifest, "dynamic-quant", ThreadSettings())
    batch = predictor.preprocess(images)
    with torch.inference_mode():
        expected = fresh(pixel_values=torch.from_numpy(batch)).logits.numpy()
    np.testing.assert_allclose(predictor.forward(batch), expected, atol=1e-6)
    assert manifest.variants["dynamic-quant"]["size_mb"] < manifest.variants["plain"]["size_mb"]


@pytest.mark.tensorflow
def test_tf_clustered_kernels_have_at_most_the_cluster_count(manifest, smoke_artifacts):
    import tensorflow as tf

    build = manifest.variants["tf-clustered"]["build"]
    loaded = tf.saved_model.load(str(smoke_artifacts / "tf-clustered" / "saved_model"))
    # The SavedModel holds the serving signature and the model's variables as ``weights`` (not the Keras model)
    kernels = [v for v in loaded.weights if v.name.endswith("kernel:0") and len(v.shape) == 2]
    assert len(kernels) == build["clustered_layers"] > 0
    for kernel in kernels:
        assert len(np.unique(kernel.numpy())) <= build["clusters_per_layer"]
    assert build["gzip_mb"] < build["plain_safetensors_gzip_mb"]


def test_distilled_student_is_a_resnet18_at_its_own_resolution(manifest, smoke_artifacts):
    build = manifest.variants["distilled-resnet18"]["build"]
    assert 11_000_000 < build["parameters"] < 11_400_000
    size = PreprocessConfig.from_dir(smoke_artifacts / "distilled-resnet18").height
    assert size == build["distillation"]["resolution"]


def test_lite0_student_beats_a_floor_its_untrained_self_cannot(manifest, smoke_artifacts, dataset, tmp_path):
    from safetensors.torch import save_file

    from build_models.measure.evaluate import TestImages, evaluate
    from build_models.variants.distilled_lite0 import lite0_classifier
    from vitcore.backends.pytorch import LITE0_WEIGHTS as WEIGHTS_FILE
    from vitcore.backends.pytorch import Lite0Predictor

    floor = 0.78  # measured 0.848 on the smoke split; its teacher (the smoke ViT) scores about 0.61
    assert manifest.variants["distilled-lite0"]["metrics"]["f1"] >= floor
    untrained = tmp_path / "untrained-lite0"
    untrained.mkdir()
    save_file(lite0_classifier(2, seed=0).state_dict(), str(untrained / WEIGHTS_FILE))
    shutil.copy(smoke_artifacts / "distilled-lite0" / "preprocessor_config.json", untrained)
    rows = [int(i.split(":")[0]) for i in json.loads((smoke_artifacts / "split.json").read_text())["test"]]
    predictor = Lite0Predictor(untrained)
    predictor.load()
    metrics, _ = evaluate(predictor, TestImages.decode(dataset, np.asarray(rows)), manifest.data["label_names"])
    assert metrics["f1"] < floor


def test_report_has_every_variant(smoke_artifacts):
    report = (smoke_artifacts / "report.md").read_text()
    for name in list_variants():
        assert f"| {name} |" in report
    report_json = json.loads((smoke_artifacts / "report.json").read_text())
    for row in report_json["rows"]:
        assert row["model"]["p50_ms"] > 0 and row["end_to_end"]["p50_ms"] > 0, row["variant"]
    machine = report_json["latency"]["machine"]
    assert machine["cpu"]["usable_cores"] >= 1 and set(machine["applied"]) == set(list_variants())
    assert "Beside the seed study" in report and "| dynamic-quant | dynamic quantization (qint8) |" in report
    assert (smoke_artifacts / "report.png").stat().st_size > 1000


def test_a_failing_builder_does_not_stop_the_others(smoke_artifacts, tmp_path, monkeypatch, dataset):
    from build_models.measure.evaluate import TestImages
    from build_models.profiles import get_profile
    from build_models.sources.dataset import make_splits

    copy = tmp_path / "artifacts"
    shutil.copytree(smoke_artifacts, copy)
    manifest = Manifest.load(copy)
    built: list[str] = []

    def explode(ctx):
        raise RuntimeError("boom")

    def counted(spec):
        def build(ctx):
            built.append(spec.name)
            return spec.build(ctx)
        return dataclasses.replace(spec, builder=build)

    specs = {"onnx": dataclasses.replace(get_variant("onnx"), builder=explode), "plain": counted(get_variant("plain"))}
    monkeypatch.setattr(pipeline, "get_variant", lambda name: specs.get(name) or get_variant(name))
    profile = get_profile("smoke")
    splits = make_splits(dataset.labels, profile.split)
    test = TestImages.decode(dataset, splits.test[:40])
    request = pipeline.BuildRequest(profile=profile, artifacts_dir=copy, force=True)
    ctx_args = {"data": dataset, "splits": splits, "preprocess": PreprocessConfig.from_dir(copy / "base"),
                "pixel_cache": {}, "row_cache": {}}
    pipeline.build_variants(request, manifest, ["onnx", "plain"], test, ctx_args)
    assert manifest.variants["onnx"]["status"] == "failed" and "boom" in manifest.variants["onnx"]["error"]
    assert built == ["plain"] and manifest.variants["plain"]["status"] == "ok"
    assert manifest.variants["plain"]["metrics"]["evaluated_images"] == 40  # built and scored after the failure


@pytest.mark.parametrize("name", ["onnx-int8", "resnet18-int8", "lite0-int8"])
def test_int8_variants_record_their_candidates(manifest, name):
    entry = manifest.variants[name]
    build = entry["build"]
    assert build["kept"] in build["candidates"]
    assert entry["runtime"] == build["candidates"][build["kept"]]["runtime"]
    assert build["candidates"][build["kept"]]["agreement_with_fp32"] >= 0.95, build["candidates"]
    assert all(facts["latency_ms"] > 0 for facts in build["candidates"].values())


def test_openvino_int8_has_quantized_operations(smoke_artifacts):
    xml = (smoke_artifacts / "openvino-int8" / "openvino_model.xml").read_text()
    assert "FakeQuantize" in xml or "FakeConvert" in xml or 'element_type="i8"' in xml or 'element_type="u8"' in xml


@pytest.mark.parametrize("name", ["openvino", "openvino-int8"])
def test_openvino_throughput_hint_splits_a_batch_over_streams_with_the_same_answers(manifest, images, name):
    latency = load_predictor(manifest, name, ThreadSettings(openvino_hint="LATENCY"))
    throughput = load_predictor(manifest, name, ThreadSettings(openvino_hint="THROUGHPUT", openvino_streams=2))
    batch = latency.preprocess(images[:5])
    np.testing.assert_allclose(throughput.forward(batch), latency.forward(batch), atol=1e-4)
    assert latency.queue is None  # type: ignore[attr-defined]
    assert throughput.streams == 2  # type: ignore[attr-defined]  # set explicitly: the plugin picks 1 on 2 cores
    assert len(throughput._chunks) == min(5, len(throughput.queue)) >= 2  # type: ignore[attr-defined]


def test_vit_base_flops_match_the_published_figure():
    from transformers import ViTConfig

    from build_models.measure.flops import vit_flops
    from build_models.sources.base_model import SCRATCH_PRESETS

    assert vit_flops(ViTConfig(**SCRATCH_PRESETS["vit-base"], num_labels=2)) / 1e9 == pytest.approx(35.2, abs=0.2)


# Measured on the smoke build (seeded, 500 test images): plain accuracy 0.632, macro F1 0.632 on an AVX-512
# EPYC; 0.562 and 0.557 on an AVX2-only EPYC (fp32 kernels differ by CPU class; 48 px and other recipes were
# tried, see the issue 27 note, and moved every other smoke figure the suite is calibrated on). Chance is
# 0.50 +- 0.022 (one sigma at n=500): a label-blind model passes 0.55 with p < 0.013 (2.2 sigma), and a
# constant one, whose macro F1 is at most 0.34, never does.
SMOKE_QUALITY_FLOOR = 0.55


def test_smoke_plain_beats_chance_by_a_margin(manifest):
    metrics = manifest.variants["plain"]["metrics"]
    assert metrics["count"] == 500
    assert metrics["accuracy"] >= SMOKE_QUALITY_FLOOR, metrics
    assert metrics["f1_macro"] >= SMOKE_QUALITY_FLOOR, metrics


def test_every_f1_rests_on_the_same_images(manifest):
    """One evaluation set for every row: its image count, sample seed and id are the manifest's, and a lossless
    copy's F1 is plain's (the smoke build runs them on the whole set: same labels, so the same F1)."""
    evaluation = manifest.data["evaluation"]
    for name, entry in manifest.variants.items():
        metrics = entry["metrics"]
        assert (metrics["images"], metrics["sample_seed"], metrics["evaluation_set"]) == (
            evaluation["images"], evaluation["sample_seed"], evaluation["set_id"]), name
        assert metrics["count"] == evaluation["images"], name
    plain = manifest.variants["plain"]["metrics"]["f1"]
    for name in [n for n in list_variants() if get_variant(n).lossless]:
        assert manifest.variants[name]["metrics"]["f1"] == plain, name


def test_every_variant_is_also_scored_on_the_validation_selection_set(manifest, smoke_artifacts):
    """What the router chooses on: every variant's F1 on one stratified sample of the validation split, never a
    test photo; a lossless copy with plain's labels takes plain's figure."""
    selection = manifest.data["selection"]
    split = json.loads((smoke_artifacts / "split.json").read_text())
    assert selection["images"] == 300 and selection["validation_split_images"] == len(split["val"])
    assert sum(selection["class_counts"]) == 300 and abs(selection["class_counts"][0] - 150) <= 3
    for name, entry in manifest.variants.items():
        assert entry["validation"]["set_id"] == selection["set_id"] and entry["validation"]["images"] == 300, name
        assert entry["validation"]["f1"] is not None, name
    plain = manifest.variants["plain"]["validation"]["f1"]
    for name in [n for n in list_variants() if get_variant(n).lossless and n != "plain"]:
        assert manifest.variants[name]["validation"] == {**manifest.variants["plain"]["validation"],
                                                         "f1_source": "plain"}, name
    assert manifest.variants["distilled-lite0"]["validation"]["f1"] != plain  # scored, not copied


def test_smoke_teacher_is_recorded_and_strong(manifest):
    teacher = manifest.data["base_model"]["teacher"]
    assert teacher["test_metrics"]["accuracy"] >= 0.85, teacher["test_metrics"]
    assert set(teacher["zero_shot_accuracy"]) == {"half", "imagenet"}
    assert manifest.data["base_model"]["training"]["distillation"] == (
        "cached teacher targets: token loss x1, logit KD alpha 0.5 at T=2")


@pytest.mark.parametrize("name", [n for n in list_variants() if get_variant(n).lossless and n != "plain"])
def test_build_records_the_lossless_check(smoke_artifacts, manifest, name):
    """The figure the README states is the build's own record, recomputed here from the eval files."""
    check = manifest.variants[name]["lossless_check"]
    _, plain = read_predictions(smoke_artifacts / "eval" / "plain.json")
    _, other = read_predictions(smoke_artifacts / "eval" / f"{name}.json")
    assert check["images"] == len(plain) == 500
    assert check["labels_equal"] == f"{int((plain.argmax(1) == other.argmax(1)).sum())}/500" == "500/500"
    assert check["max_probability_difference"] == pytest.approx(float(np.abs(plain - other).max()), abs=1e-6)


def test_stacked_pruned_int8_agrees_with_its_pruned_source(manifest):
    entry = manifest.variants["pruned-int8"]
    build = entry["build"]
    assert build["stacked"][0] == "pruned-structured-40"
    assert build["parameters"] == manifest.variants["pruned-structured-40"]["build"]["parameters"]
    kept = build["candidates"][build["kept"]]
    assert kept["agreement_with_fp32"] >= 0.95, build["candidates"]
    # int8 weights are a quarter of fp32's; per-channel scales and graph overhead weigh more in the smoke model, and
    # more still once 40% of it is cut (51 k parameters: measured 0.129 MB against 0.209)
    assert entry["size_mb"] < 0.7 * manifest.variants["pruned-structured-40"]["size_mb"]
    assert abs(entry["metrics"]["accuracy"] - manifest.variants["pruned-structured-40"]["metrics"]["accuracy"]) <= 0.03


def test_eager_export_handles_a_vit_with_pruned_heads(tmp_path):
    """optimum cannot export a ViT saved with pruned heads (the offline build's pruned-structured);
    the eager fallback of pruned-int8 must, with the same logits in ONNX Runtime and OpenVINO."""
    import onnxruntime as ort
    import openvino as ov
    from transformers import ViTConfig, ViTForImageClassification

    from build_models.export.formats import export_onnx_eager, onnx_to_openvino
    from build_models.sources.base_model import SCRATCH_PRESETS, label_maps
    from vitcore.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(**SCRATCH_PRESETS["tiny"], **label_maps(["cat", "dog"]))).eval()
    model.prune_heads({0: [1]})
    model.save_pretrained(str(tmp_path / "pruned"))
    PreprocessConfig(32, 32).save(tmp_path / "pruned")
    onnx_file = export_onnx_eager(tmp_path / "pruned", tmp_path / "onnx")
    xml = onnx_to_openvino(onnx_file, tmp_path / "ov")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = ViTForImageClassification.from_pretrained(str(tmp_path / "pruned"))(pixel_values=x).logits.numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"pixel_values": x.numpy()})[0], expected, atol=1e-4)
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.testing.assert_allclose(compiled(x.numpy())[0], expected, atol=1e-4)


def test_parameter_count_of_a_vit_with_pruned_heads(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    from build_models.context import parameter_count
    from build_models.sources.base_model import SCRATCH_PRESETS, label_maps

    model = ViTForImageClassification(ViTConfig(**SCRATCH_PRESETS["tiny"], **label_maps(["cat", "dog"])))
    model.prune_heads({0: [1]})
    model.save_pretrained(str(tmp_path))
    assert parameter_count(tmp_path) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["plain", "dynamic-quant", "openvino-int8", "transformers-pipeline"])
def test_evaluation_with_shared_resized_pixels_equals_predicting_images(manifest, images, name):
    """The build resizes the test images once per preprocessing config and reuses them across variants; the
    probabilities are exactly those of predicting the images one by one (the pipelines keep their own path)."""
    from build_models.measure.evaluate import TestImages, predict_all, uses_shared_preprocessing

    predictor = load_predictor(manifest, name, ThreadSettings())
    test = TestImages([str(i) for i in range(len(images))], np.zeros(len(images), dtype=int), images)
    expected = np.concatenate([predictor.predict_images([image]) for image in images])
    shared = uses_shared_preprocessing(predictor)
    assert shared == (name != "transformers-pipeline")
    got = predict_all(predictor, images, resized=test.resized(predictor.preprocess_config) if shared else None)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ["tome", "pruned-tome-int8"])
def test_token_merging_keeps_the_largest_r_within_a_point_on_validation(manifest, name):
    build = manifest.variants[name]["build"]
    scored = {int(r): accuracy for r, accuracy in build["validation_accuracy"].items()}
    assert build["r"] == max(r for r, accuracy in scored.items() if accuracy >= scored[0] - build["tolerance"])
    assert len(scored) >= 3 and build["validation_images"] == 200
    config = load_predictor(manifest, "plain", ThreadSettings()).model.config
    from build_models.export.tome import tokens_per_block

    patches = (config.image_size // config.patch_size) ** 2
    assert build["tokens_per_block"] == tokens_per_block(patches, config.num_hidden_layers, build["r"])
    assert manifest.data["latency"]["limit"]["rows"][name]["macs"] == build["macs"]


def test_the_token_merging_export_answers_as_its_torch_module(manifest):
    """The IR against the merged torch module on 8 validation photos, at the build (max |logit difference|)."""
    assert manifest.variants["tome"]["build"]["export_max_abs_difference"] < 1e-4
    stacked = manifest.variants["pruned-tome-int8"]["build"]["stacked"]
    assert stacked[0] == "pruned-structured-40" and stacked[1].startswith("token merging r=")


def test_the_bf16_row_says_what_precision_the_cpu_gave_it(manifest):
    from vitcore.hardware import cpu_facts

    flags = set(cpu_facts()["flags"])
    build = manifest.variants["openvino-bf16"]["build"]
    applied = load_predictor(manifest, "openvino-bf16", ThreadSettings()).applied_settings()
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert build["bf16"]["applicable"] and "precision_note" not in build
        assert "bf16" in applied["openvino_inference_precision_hint"]
    else:
        assert not build["bf16"]["applicable"] and build["precision_note"].startswith("bf16 not applicable")
        assert "float32" in applied["openvino_inference_precision_hint"]
        row = next(line for line in (manifest.root / "report.md").read_text().splitlines()
                   if line.startswith("| openvino-bf16 |"))
        assert row.endswith(build["precision_note"] + " |")
