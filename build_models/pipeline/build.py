"""One build: dataset and split, the plan, the base model, every selected variant, latency, the cascade, the report."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from build_models.measure.evaluate import TestImages
from build_models.pipeline.base_step import ensure_base_model
from build_models.pipeline.cascade_step import choose_cascade_step
from build_models.pipeline.latency_step import measure_latency
from build_models.pipeline.plan_step import settle_and_plan
from build_models.pipeline.progress import build_lock, progress_step
from build_models.pipeline.request import BASE_DIR, WORK_DIR, BuildRequest  # noqa: F401 - the pipeline's API
from build_models.pipeline.variant_step import build_variants
from build_models.profiles import BuildProfile
from build_models.reporting.report import write_report
from build_models.sources.dataset import (
    LabelledImages,
    Splits,
    load_labelled_images,
    make_splits,
    split_hash,
    split_record,
    stratified_subset,
    write_split_ids,
)
from vitcore.build_progress import BuildProgress
from vitcore.catalogue import resolve_selection
from vitcore.hardware import cpu_facts, package_versions
from vitcore.manifest import SCHEMA_VERSION, Manifest
from vitcore.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)


def run_build(request: BuildRequest) -> Manifest:
    """The build, recording where it is in ``build-progress.json`` (a service serving it while it builds reads
    that); an error or an interruption is recorded there too."""
    request.artifacts_dir.mkdir(parents=True, exist_ok=True)
    if request.plan_only:
        return _run_build(request, None)
    with build_lock(request.artifacts_dir):
        progress = BuildProgress(request.artifacts_dir)
        progress.begin()
        try:
            manifest = _run_build(request, progress)
        except BaseException as exc:
            progress.finish(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            raise
        failed = [n for n, e in manifest.variants.items() if e.get("status") != "ok"]
        progress.finish(error=f"failed variants: {', '.join(failed)}" if failed else None)
    return manifest


def _run_build(request: BuildRequest, progress: BuildProgress | None) -> Manifest:
    profile, root = request.profile, request.artifacts_dir
    started = time.perf_counter()
    data = load_labelled_images(profile.dataset)
    splits = make_splits(data.labels, profile.split)
    split_info = split_record(data, splits, profile.split)
    manifest = Manifest.load_or_new(root)
    if manifest.data.get("dataset", {}).get("split") != split_info:
        manifest.data["variants"] = {}  # a different split invalidates every score
    write_split_ids(root / "split.json", data, splits)
    manifest.data.update(
        schema_version=SCHEMA_VERSION, profile=profile.name, label_names=data.label_names,
        dataset={"source": profile.dataset, "split": split_info, "split_ids_file": "split.json"},
        packages=package_versions(), machine=cpu_facts(),
    )
    request = settle_and_plan(request, data, splits, manifest)
    if request.plan_only:
        (root / "plan.json").write_text(json.dumps(manifest.data["plan"], indent=2))
        return manifest
    assert progress is not None  # a plan-only run has returned above
    progress.planned(manifest.data["plan"]["phases"])
    with progress_step(progress, "base training", "teacher"):
        base_info = ensure_base_model(request, data, splits)
    if manifest.data.get("base_model", {}).get("fingerprint") != base_info["fingerprint"]:
        manifest.data["variants"] = {}
    manifest.data["base_model"] = base_info
    manifest.save()
    test = TestImages.decode(data, evaluation_rows(request.profile, data, splits, manifest))
    validation = TestImages.decode(data, selection_rows(request.profile, data, splits, manifest))
    names = resolve_selection(request.variants)
    ctx_args = dict(data=data, splits=splits, preprocess=PreprocessConfig.from_dir(root / BASE_DIR),
                    pixel_cache={}, row_cache={})
    build_variants(request, manifest, names, test, ctx_args, validation, progress)
    with progress_step(progress, "latency table"):
        measure_latency(request, manifest, test)
    with progress_step(progress, "cascade"):
        choose_cascade_step(request, manifest, data, splits, test)
    record_build_time(manifest, request.variants, time.perf_counter() - started)
    manifest.save()
    write_report(manifest)
    return manifest


def evaluation_rows(profile: BuildProfile, data: LabelledImages, splits: Splits, manifest: Manifest) -> Any:
    """The test rows every variant's F1 rests on (the evaluation set): the whole test split, or with ``eval_limit``
    a stratified subset of it. Recorded in the manifest with its seed and id (the sha256 of its image ids, first
    16 hex digits), which every variant's metrics repeat; each F1 carries a bootstrap confidence interval."""
    rows = stratified_subset(splits.test, data.labels[splits.test], profile.eval_limit, profile.split.seed)
    manifest.data["evaluation"] = {
        "images": int(len(rows)), "test_split_images": int(len(splits.test)),
        "selection": "whole test split" if len(rows) == len(splits.test)
        else f"stratified subset by label (seed {profile.split.seed})",
        "sample_seed": profile.split.seed, "set_id": split_hash(data.ids, rows)[:16],
        "class_counts": split_record_counts(data, rows),
        "lossless_subset": None if profile.lossless_eval_limit is None or profile.lossless_eval_limit >= len(rows)
        else f"lossless copies run on a stratified {profile.lossless_eval_limit} of these (seed "
             f"{profile.split.seed}); their F1 is plain's when every label there matches plain's",
        "f1_interval": "95% percentile bootstrap, 2,000 resamples of the scored images"}
    return rows


SELECTION_IMAGES = 300  # validation photos each variant is also scored on (option selection_images)


def selection_rows(profile: BuildProfile, data: LabelledImages, splits: Splits, manifest: Manifest) -> Any:
    """The selection set: a stratified sample of the validation split that every variant is also scored on, so
    that the router and the report's ``auto`` row choose among variants without looking at the test split."""
    count = int(profile.options.get("selection_images", SELECTION_IMAGES))
    rows = stratified_subset(splits.val, data.labels[splits.val], count, profile.split.seed)
    manifest.data["selection"] = {
        "images": int(len(rows)), "validation_split_images": int(len(splits.val)),
        "sample_seed": profile.split.seed, "set_id": split_hash(data.ids, rows)[:16],
        "class_counts": split_record_counts(data, rows),
        "use": "the router and the report's auto row choose on each variant's F1 here; every F1 they report "
               "is the test split's"}
    return rows


def split_record_counts(data: LabelledImages, rows: Any) -> list[int]:
    import numpy as np

    return [int(c) for c in np.bincount(data.labels[rows], minlength=len(data.label_names))]



def record_build_time(manifest: Manifest, variants: str, seconds: float) -> None:
    """Append this invocation to the build history; ``build_seconds`` is the total over every
    invocation that produced these artifacts (a resumed or extended build adds its own time)."""
    history = manifest.data.setdefault("build_history", [])
    if not history and manifest.data.get("build_seconds"):
        history.append({"variants": "earlier run", "seconds": manifest.data["build_seconds"]})
    history.append({"variants": variants, "seconds": round(seconds, 1),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    manifest.data["build_seconds"] = round(sum(run["seconds"] for run in history), 1)





