"""Every subset of a split is a seeded stratified sample, never its first rows: the hub's copy of the dataset is
ordered by label, where the first N rows of a split are all cats. Checked on a label-sorted copy of the local
photos (written to a temporary folder, never committed): each selection holds both labels in its split's
proportion, and a smoke build from the sorted copy reaches the floors a build from the shuffled copy does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from build_models.context import BuildContext
from build_models.measure import evaluate
from build_models.measure.evaluate import read_predictions
from build_models.pipeline.build import BuildRequest, run_build
from build_models.profiles import get_profile
from build_models.sources.dataset import LabelledImages, SplitConfig, load_labelled_images, make_splits
from tests.conftest import DATASET
from tests.test_variants import SMOKE_QUALITY_FLOOR
from vitcore.catalogue import get_variant
from vitcore.preprocessing import PreprocessConfig
from vitcore.threads import ThreadSettings

PER_LABEL = 1200  # photos of each label in the sorted copy: the smoke split's 2,000 and some to spare
LITE0_FLOOR = 0.78  # test_variants: the Lite0 student's floor on the smoke build (measured 0.848 there)


@pytest.fixture(scope="module")
def sorted_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local dataset's layout (one parquet shard, the same features metadata) holding a seeded sample of
    ``PER_LABEL`` photos of each label, every cat before every dog."""
    import datasets
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("sorted-dataset")
    table = pq.read_table(DATASET / "data")
    labels = table.column("labels").to_numpy()
    rng = np.random.default_rng(28)
    rows = np.concatenate([np.sort(rng.choice(np.flatnonzero(labels == label), PER_LABEL, replace=False))
                           for label in (0, 1)])  # label 0 first: sorted by label
    (folder / "data").mkdir()
    pq.write_table(table.take(rows), folder / "data" / "train-00000-of-00001.parquet")
    (folder / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
                                      "    path: data/train-*\n---\n\nA label-sorted test copy.\n")
    # the datasets library's arrow cache of this copy stays in the temporary folder too
    patch = pytest.MonkeyPatch()
    patch.setattr(datasets.config, "HF_DATASETS_CACHE", folder.parent / f"{folder.name}-hf-cache")
    yield folder
    patch.undo()


@pytest.fixture(scope="module")
def sorted_data(sorted_copy: Path) -> LabelledImages:
    data = load_labelled_images(str(sorted_copy))
    assert len(data) == 2 * PER_LABEL and np.all(np.diff(data.labels) >= 0), "the copy is not sorted by label"
    return data


def dog_share(labels: np.ndarray) -> float:
    return float(np.mean(labels))


def assert_in_proportion(selected: np.ndarray, split: np.ndarray, what: str) -> None:
    """Both labels, each within 1 point of its share of the split."""
    assert len(np.unique(selected)) == 2, f"{what}: one label only"
    assert abs(dog_share(selected) - dog_share(split)) <= 0.01, (what, dog_share(selected), dog_share(split))


def labelled_context(data: LabelledImages, splits: Any, options: dict[str, Any]) -> BuildContext:
    """A context whose cached 'pixels' are each photo's label (0 or 255), so a batch shows the labels it holds."""
    preprocess = PreprocessConfig(2, 2, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5))
    pixel_cache, row_cache = {}, {}
    for split, rows in splits.as_dict().items():
        labels = data.labels[rows]
        pixels = np.broadcast_to((labels * 255).astype(np.uint8)[:, None, None, None], (len(rows), 2, 2, 3))
        pixel_cache[split], row_cache[split] = (np.ascontiguousarray(pixels), labels), rows
    unused = Path("unused")
    return BuildContext(base_dir=unused, out_dir=unused, work_dir=unused, label_names=["cat", "dog"],
                        preprocess=preprocess, threads=ThreadSettings(), options=options, data=data, splits=splits,
                        cache_dir=unused, seed=7, pixel_cache=pixel_cache, row_cache=row_cache)


def batch_labels(batch: np.ndarray) -> np.ndarray:
    """The labels a normalised batch of ``labelled_context`` pixels holds (-1: cat, +1: dog)."""
    return (batch[:, 0, 0, 0] > 0).astype(np.int64)


def test_stratified_limit_keeps_an_uneven_dataset_in_proportion():
    labels = np.repeat([0, 1], [3000, 7000])  # ordered by label, 30% cats
    splits = make_splits(labels, SplitConfig(limit=1000, val_fraction=0.2, test_fraction=0.2))
    for name, rows in splits.as_dict().items():
        assert abs(dog_share(labels[rows]) - 0.7) <= 0.01, name
    assert sum(len(rows) for rows in splits.as_dict().values()) == 1000


def test_every_selection_from_a_label_sorted_copy_holds_both_labels_in_proportion(sorted_data):
    """A few hundred photos (the split's limit): the split itself, the validation photos that choose
    checkpoints, the int8 calibration and choice photos, the students' photos and the lossless subset."""
    data = sorted_data
    splits = make_splits(data.labels, SplitConfig(limit=600, val_fraction=0.25, test_fraction=0.25))
    for name, rows in splits.as_dict().items():
        assert_in_proportion(data.labels[rows], data.labels, f"--limit: {name} split")
    ctx = labelled_context(data, splits, {"val_images": 100})
    val, train, test = (data.labels[rows] for rows in (splits.val, splits.train, splits.test))
    assert_in_proportion(ctx.train_data().val_labels, val, "val_images")
    assert len(ctx.train_data().val_labels) == 100
    assert_in_proportion(batch_labels(ctx.validation_batch(101)), val, "validation_batch (int8_choice_images)")
    assert_in_proportion(batch_labels(ctx.calibration_batch(128)), train, "calibration_batch")
    _, student_labels, student_rows = ctx.sampled("train", 150)  # distill_images / lite0_images
    assert_in_proportion(student_labels, train, "students' photos")
    np.testing.assert_array_equal(data.labels[student_rows], student_labels)
    images = evaluate.TestImages([data.ids[r] for r in splits.test], test, [None] * len(test))  # type: ignore[list-item]
    lossless = images.sample(100, seed=3)
    assert_in_proportion(lossless.labels, test, "lossless subset")
    assert lossless.ids == images.sample(100, seed=3).ids != images.sample(100, seed=4).ids  # seeded


@pytest.fixture(scope="module")
def sorted_build(sorted_copy: Path, sorted_data: LabelledImages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke build from the sorted copy: plain, onnx (checked on a stratified 100 of the test images), a student
    that trains on a sample of the train photos and checks on a sample of the validation photos, an int8 copy of
    plain (its choice on a validation sample), and the cascade (its calibration on a validation sample)."""
    smoke = get_profile("smoke")
    profile = smoke.with_overrides(
        dataset=str(sorted_copy), lossless_eval_limit=100,
        options={**smoke.options, "lite0_images": 400, "val_images": 100, "int8_choice_images": 100,
                 "cascade_val_images": 200})
    root = tmp_path_factory.mktemp("sorted-artifacts")
    manifest = run_build(BuildRequest(profile=profile, artifacts_dir=root,
                                      variants="plain,onnx,onnx-int8,distilled-lite0"))
    failed = {n: e.get("error") for n, e in manifest.variants.items() if e.get("status") != "ok"}
    assert not failed, failed
    return root


@pytest.fixture(scope="module")
def sorted_manifest(sorted_build: Path) -> dict[str, Any]:
    return json.loads((sorted_build / "manifest.json").read_text())


def test_a_build_from_the_sorted_copy_reaches_the_shuffled_copys_floors(sorted_manifest):
    plain = sorted_manifest["variants"]["plain"]["metrics"]
    assert plain["count"] == 500
    assert plain["accuracy"] >= SMOKE_QUALITY_FLOOR and plain["f1_macro"] >= SMOKE_QUALITY_FLOOR, plain
    assert sorted_manifest["variants"]["distilled-lite0"]["metrics"]["f1"] >= LITE0_FLOOR


def test_the_sorted_builds_selections_hold_both_labels_in_proportion(sorted_build, sorted_manifest, sorted_data):
    split = sorted_manifest["dataset"]["split"]
    shares = {name: split[name]["class_counts"][1] / split[name]["count"] for name in ("train", "val", "test")}
    for name, share in shares.items():
        assert abs(share - dog_share(sorted_data.labels)) <= 0.01, name
    student = sorted_manifest["variants"]["distilled-lite0"]["build"]["distillation"]
    assert sum(student["class_counts"]) == 400 and sum(student["val_class_counts"]) == 100
    assert abs(student["class_counts"][1] / 400 - shares["train"]) <= 0.01, student["class_counts"]
    assert abs(student["val_class_counts"][1] / 100 - shares["val"]) <= 0.01, student["val_class_counts"]
    cascade = sorted_manifest["cascade"]["validation"]
    assert cascade["images"] == 200 and abs(cascade["class_counts"][1] / 200 - shares["val"]) <= 0.01, cascade
    ids, _ = read_predictions(sorted_build / "eval" / "onnx.json")
    onnx_labels = sorted_data.labels[[int(image_id.split(":")[0]) for image_id in ids]]
    assert len(ids) == 100
    assert_in_proportion(onnx_labels, np.repeat([0, 1], split["test"]["class_counts"]), "lossless subset")


def test_every_f1_of_the_sorted_build_rests_on_the_same_images(sorted_build, sorted_manifest):
    evaluation = sorted_manifest["evaluation"]
    for name, entry in sorted_manifest["variants"].items():
        metrics = entry["metrics"]
        assert (metrics["images"], metrics["sample_seed"], metrics["evaluation_set"]) == (
            evaluation["images"], evaluation["sample_seed"], evaluation["set_id"]), name
        assert metrics["count"] == evaluation["images"] == 500, name
    plain, onnx = (sorted_manifest["variants"][n]["metrics"] for n in ("plain", "onnx"))
    assert get_variant("onnx").lossless
    assert onnx["f1"] == plain["f1"] and onnx["f1_ci95"] == plain["f1_ci95"]
    assert onnx["evaluated_images"] == 100 and onnx["f1_basis"] == "= plain (100/100 same labels)"
    assert sorted_manifest["variants"]["onnx"]["lossless_check"]["labels_equal"] == "100/100"
    row = next(line for line in (sorted_build / "report.md").read_text().splitlines() if line.startswith("| onnx |"))
    assert f"{plain['f1']:.4f}" in row and "= plain (100/100 same labels)" in row and "first" not in row


def _row(variant: str, f1: float, images: int, **extra: Any) -> dict[str, Any]:
    return {"variant": variant, "status": "ok", "size_mb": 1.0, "size_note": None, "f1": f1, "f1_ci95": None,
            "evaluated_images": images, "model": {}, "end_to_end": {}, "service_overhead_ms": None,
            "parameters": None, "sparsity": None, "runtime": "x", **extra}


def test_report_f1_cells_state_their_images_and_old_reports_apply_the_same_rule():
    from build_models.reporting.report import markdown_table

    new = markdown_table([_row("plain", 0.9768, 2300, evaluation_set="aaaa", sample_seed=1),
                          _row("onnx", 0.9768, 2300, evaluation_set="aaaa", sample_seed=1,
                               f1_basis="= plain (300/300 same labels)"),
                          _row("dynamic-quant", 0.97, 300, evaluation_set="bbbb", sample_seed=1)])
    cells = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[2] for line in new.splitlines()[2:]}
    assert cells == {"plain": "0.9768", "onnx": "0.9768 = plain (300/300 same labels)",
                     "dynamic-quant": "0.9700 (other images: 300, set bbbb)"}
    # Written before the set was recorded: a lossless copy with plain's label on every image it saw shows plain's
    # F1 (the rule above); one whose labels differed, or with no check, stays marked as resting on fewer images.
    old = markdown_table([_row("plain", 0.9768, 2300),
                          _row("onnx", 0.9868, 300, lossless_check={"labels_equal": "300/300"}),
                          _row("openvino", 0.9868, 300, lossless_check={"labels_equal": "299/300"}),
                          _row("dynamic-quant", 0.97, 300)])
    cells = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[2] for line in old.splitlines()[2:]}
    assert cells == {"plain": "0.9768", "onnx": "0.9768 = plain (300/300 same labels)",
                     "openvino": "0.9868 (first 300 scored images)",
                     "dynamic-quant": "0.9700 (first 300 scored images)"}
