"""One build: dataset and split, base model (trained or loaded), then every selected variant."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from build_models.base_model import BaseModelSource, LoadedBase, load_base_model
from build_models.build_keys import RecordedOptions, build_inputs, key_of, stale_reasons
from build_models.context import BuildContext
from build_models.data import (
    LabelledImages,
    Splits,
    load_labelled_images,
    make_splits,
    split_hash,
    split_record,
    stratified_subset,
    write_split_ids,
)
from build_models.errors import BuildError
from build_models.evaluate import TestImages, evaluate, read_predictions, write_predictions
from build_models.hardware import cpu_facts, machine_record, package_versions
from build_models.manifest import SCHEMA_VERSION, Manifest, describe_files, make_readable
from build_models.plan import make_plan
from build_models.preprocessing import PreprocessConfig
from build_models.profiles import BuildProfile
from build_models.registry import get_variant, resolve_selection
from build_models.report import base_is_trained, write_report
from build_models.teacher import Teacher
from build_models.threads import ThreadSettings
from build_models.training import TrainConfig, TrainData, train_classifier

if TYPE_CHECKING:
    from build_models.partial_finetune import CachedStates

log = logging.getLogger(__name__)

BASE_DIR = "base"
WORK_DIR = ".work"
@dataclass(frozen=True)
class BuildRequest:
    profile: BuildProfile
    artifacts_dir: Path
    variants: str = "all"
    force: bool = False
    threads: ThreadSettings = ThreadSettings()
    device: str = "cpu"  # torch device for training and the torch predictors' build-time evaluation
    plan_only: bool = False  # print the plan and stop before any work


def run_build(request: BuildRequest) -> Manifest:
    profile, root = request.profile, request.artifacts_dir
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
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
    base_info = ensure_base_model(request, data, splits)
    if manifest.data.get("base_model", {}).get("fingerprint") != base_info["fingerprint"]:
        manifest.data["variants"] = {}
    manifest.data["base_model"] = base_info
    manifest.save()
    test = TestImages.decode(data, evaluation_rows(request.profile, data, splits, manifest))
    names = resolve_selection(request.variants)
    ctx_args = dict(data=data, splits=splits, preprocess=PreprocessConfig.from_dir(root / BASE_DIR),
                    pixel_cache={}, row_cache={})
    build_variants(request, manifest, names, test, ctx_args)
    measure_latency(request, manifest, test)
    choose_cascade_step(request, manifest, data, splits, test)
    record_build_time(manifest, request.variants, time.perf_counter() - started)
    manifest.save()
    write_report(manifest)
    return manifest


def evaluation_rows(profile: BuildProfile, data: LabelledImages, splits: Splits, manifest: Manifest) -> Any:
    """The test rows every variant is scored on: the whole test split, or with ``eval_limit`` a stratified
    subset of it (recorded in the manifest; each F1 carries a bootstrap confidence interval)."""
    rows = stratified_subset(splits.test, data.labels[splits.test], profile.eval_limit, profile.split.seed)
    manifest.data["evaluation"] = {
        "images": int(len(rows)), "test_split_images": int(len(splits.test)),
        "selection": "whole test split" if len(rows) == len(splits.test)
        else f"stratified subset by label (seed {profile.split.seed})",
        "class_counts": split_record_counts(data, rows),
        "f1_interval": "95% percentile bootstrap, 2,000 resamples of the scored images"}
    return rows


def split_record_counts(data: LabelledImages, rows: Any) -> list[int]:
    import numpy as np

    return [int(c) for c in np.bincount(data.labels[rows], minlength=len(data.label_names))]


def build_variants(request: BuildRequest, manifest: Manifest, names: list[str], test: TestImages,
                   ctx_args: dict[str, Any]) -> None:
    """Each variant in turn; one that fails is recorded as failed and the next one still builds."""
    for name in names:
        build_one(request, manifest, name, test, ctx_args)


def record_build_time(manifest: Manifest, variants: str, seconds: float) -> None:
    """Append this invocation to the build history; ``build_seconds`` is the total over every
    invocation that produced these artifacts (a resumed or extended build adds its own time)."""
    history = manifest.data.setdefault("build_history", [])
    if not history and manifest.data.get("build_seconds"):
        history.append({"variants": "earlier run", "seconds": manifest.data["build_seconds"]})
    history.append({"variants": variants, "seconds": round(seconds, 1),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    manifest.data["build_seconds"] = round(sum(run["seconds"] for run in history), 1)


def measure_latency(request: BuildRequest, manifest: Manifest, test: TestImages) -> None:
    """Every built variant timed side by side, one image, same threads; recorded in the manifest."""
    from build_models.bench import BenchConfig, benchmark_many, reference_jpeg
    from build_models.loading import load_predictors

    names = [n for n in resolve_selection("all") if manifest.variants.get(n, {}).get("status") == "ok"]
    config = BenchConfig(runs=request.profile.latency_runs, warmup=max(3, request.profile.latency_runs // 6))
    log.info("measuring latency of %d variants (%d runs each)", len(names), config.runs)
    started = time.perf_counter()
    predictors = load_predictors(manifest, names, request.threads)
    results = benchmark_many(predictors, config, reference_jpeg(test.images[0]))
    manifest.data["latency"] = {"config": asdict(config), "results": results,
                                "machine": machine_record(request.threads, predictors),
                                "seconds": round(time.perf_counter() - started, 1)}


def choose_cascade_step(request: BuildRequest, manifest: Manifest, data: LabelledImages, splits: Splits,
                        test: TestImages) -> None:
    """Calibrate the candidates and choose the cascade (validation split); a failure costs only the cascade."""
    from build_models.cascade_build import build_cascade

    try:
        build_cascade(manifest, data, splits, request.threads, request.profile.options, test,
                      request.profile.split.seed)
    except Exception as exc:  # noqa: BLE001 - the variants stand without it
        manifest.data["cascade"] = {"error": f"{type(exc).__name__}: {exc}"}
        log.exception("cascade: not chosen")


def _fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def base_fingerprint(profile: BuildProfile, data: LabelledImages, splits: Splits) -> str:
    """Everything the base model depends on: its source, the split, the recipe, the teacher."""
    partial = asdict(profile.partial) if profile.partial else None
    return _fingerprint({"source": BaseModelSource.parse(profile.base_model).describe(),
                         "split": split_hash_of(data, splits), "train": asdict(profile.train),
                         "teacher": asdict(profile.teacher) if profile.teacher else None,
                         **({"partial": partial} if partial else {})})


def built_base_info(root: Path, fingerprint: str) -> dict[str, Any] | None:
    info_file = root / BASE_DIR / "build_info.json"
    if info_file.exists():
        info: dict[str, Any] = json.loads(info_file.read_text())
        if info.get("fingerprint") == fingerprint:
            return info
    return None


def settle_and_plan(request: BuildRequest, data: LabelledImages, splits: Splits, manifest: Manifest) -> BuildRequest:
    """Measure this machine, settle the training precision and length, print the plan and record it."""
    from build_models import planning

    costs, trains, size = planning.measured_costs(request, data.label_names, request.artifacts_dir / WORK_DIR)
    profile = planning.settle_training(request.profile, costs, size, request.device)
    choice = planning.choice_line(costs, profile, size) if trains else None
    if choice:
        log.info("%s", choice)
    base_built = built_base_info(request.artifacts_dir, base_fingerprint(profile, data, splits)) is not None
    names = resolve_selection(request.variants)
    done = [n for n in names if base_built and not request.force and _still_valid(manifest, n, profile)]
    sizes = {split: len(rows) for split, rows in splits.as_dict().items()}
    if profile.eval_limit:
        sizes["test"] = min(sizes["test"], profile.eval_limit)
    inputs = planning.plan_inputs(profile, sizes, names, costs, size,
                                  {"base": base_built, "variants": done}, trains)
    plan = make_plan(inputs, planning.machine_line())
    planning.print_plan(plan)
    manifest.data["plan"] = plan.as_dict()
    manifest.data["step_costs"] = costs.as_dict() if costs else None
    return replace(request, profile=profile)


def _still_valid(manifest: Manifest, name: str, profile: BuildProfile) -> bool:
    entry = manifest.variants.get(name)
    return bool(entry and entry.get("status") == "ok"
                and not stale_reasons(entry, get_variant(name), profile.options, manifest))


def ensure_base_model(request: BuildRequest, data: LabelledImages, splits: Splits) -> dict[str, Any]:
    """Load or train the base model into artifacts/base, unless an identical one is already there."""
    profile, root = request.profile, request.artifacts_dir
    source = BaseModelSource.parse(profile.base_model)
    fingerprint = base_fingerprint(profile, data, splits)
    base_dir = root / BASE_DIR
    built = built_base_info(root, fingerprint)
    if built is not None:
        return built
    request.threads.apply_torch()
    loaded = load_base_model(source, data.label_names, profile.train.seed)
    info: dict[str, Any] = {"source": source.describe(), "kind": source.kind, "fingerprint": fingerprint,
                            "parameters": sum(p.numel() for p in loaded.model.parameters())}
    if loaded.provenance:
        info["provenance"] = loaded.provenance
    budget_is_zero = (profile.train.epochs == 0.0) or (profile.train.minutes == 0.0)
    if loaded.needs_training and profile.partial is not None:
        info.update(train_base_partial(request, loaded, data, splits, fingerprint))
    elif loaded.needs_training and not budget_is_zero:
        info.update(train_base(request, loaded, data, splits, fingerprint))
    else:
        reason = "budget is zero" if budget_is_zero else "already labelled cat/dog: used as is"
        info["training"] = {"recipe": "none", "reason": reason, "weights": loaded.weights}
    if base_dir.exists():
        shutil.rmtree(base_dir)
    loaded.model.save_pretrained(str(base_dir), safe_serialization=True)
    loaded.preprocess.save(base_dir)
    (base_dir / "build_info.json").write_text(json.dumps(info, indent=2))
    return info


def training_inputs(profile: BuildProfile, root: Path, threads: ThreadSettings, preprocess: PreprocessConfig,
                    data: LabelledImages, splits: Splits) -> tuple[TrainData, dict[str, Any]]:
    """The base model's train/val pixels (cached under ``root``/.work) and, with a teacher, its cached
    targets; the dict holds the teacher's record for the manifest."""
    ctx = BuildContext(base_dir=root / BASE_DIR, out_dir=root / BASE_DIR, work_dir=root / WORK_DIR / "base",
                       label_names=data.label_names, preprocess=preprocess, threads=threads,
                       options={}, data=data, splits=splits, cache_dir=root / WORK_DIR / "cache")
    train_data = ctx.train_data()
    info: dict[str, Any] = {}
    if profile.teacher is not None:
        teacher = Teacher(profile.teacher, data, splits, root / WORK_DIR / "teacher", ctx.cache_dir, threads)
        train_data.targets, info["teacher"] = teacher.build(len(train_data.train_labels), data.label_names)
    return train_data, info


def train_base(request: BuildRequest, loaded: LoadedBase, data: LabelledImages, splits: Splits,
               fingerprint: str) -> dict[str, Any]:
    """Train the base ViT (with the cached teacher targets when the profile names a teacher)."""
    profile, root = request.profile, request.artifacts_dir
    train_data, info = training_inputs(profile, root, request.threads, loaded.preprocess, data, splits)
    started = time.perf_counter()
    result = train_classifier(loaded.model, train_data, profile.train, root / WORK_DIR / "base",
                              {"fingerprint": fingerprint}, device=request.device)
    info["training"] = {"recipe": loaded.recipe, "weights": loaded.weights, "config": asdict(profile.train),
                        "device": request.device, "wall_minutes": round((time.perf_counter() - started) / 60, 2),
                        "distillation": distillation_recipe(profile.train) if profile.teacher else "none",
                        **asdict(result)}
    return info


def partial_states(profile: BuildProfile, root: Path, threads: ThreadSettings, loaded: LoadedBase,
                   data: LabelledImages, splits: Splits) -> CachedStates:
    """The frozen prefix's hidden states for the train and validation images (cached under ``root``/.work)."""
    from build_models.partial_finetune import cache_states

    assert profile.partial is not None
    ctx = BuildContext(base_dir=root / BASE_DIR, out_dir=root / BASE_DIR, work_dir=root / WORK_DIR / "base",
                       label_names=data.label_names, preprocess=loaded.preprocess, threads=threads,
                       options={}, data=data, splits=splits, cache_dir=root / WORK_DIR / "cache")
    key = {"source": BaseModelSource.parse(profile.base_model).describe(), "split": split_hash_of(data, splits),
           "size": loaded.preprocess.height, "seed": profile.partial.seed}
    return cache_states(loaded.model, profile.partial, {"train": ctx.pixels("train"), "val": ctx.pixels("val")},
                        loaded.preprocess, root / WORK_DIR / "states", key, threads.resolved().openvino_threads)


def train_base_partial(request: BuildRequest, loaded: LoadedBase, data: LabelledImages, splits: Splits,
                       fingerprint: str) -> dict[str, Any]:
    """Fine-tune the last blocks of a pretrained base on cached inputs to them (``profile.partial``)."""
    from build_models.partial_finetune import recipe_record, train_tail

    profile, root = request.profile, request.artifacts_dir
    assert profile.partial is not None
    request.threads.apply_torch()
    states = partial_states(profile, root, request.threads, loaded, data, splits)
    result = train_tail(loaded.model, states, profile.partial, root / WORK_DIR / "base", fingerprint)
    return {"training": {"recipe": f"last {profile.partial.trainable_blocks} blocks fine-tuned on cached inputs",
                         "weights": loaded.weights, "device": "cpu", "distillation": "none",
                         "partial": recipe_record(profile.partial, states),
                         "wall_minutes": round(states.minutes + result.minutes, 2), **asdict(result)}}


def distillation_recipe(config: TrainConfig) -> str:
    """The distillation losses in words, as the report prints them."""
    parts = [f"token loss x{config.feature_weight:g}" if config.feature_weight else "",
             f"class-token loss x{config.pooled_weight:g}" if config.pooled_weight else "",
             f"layer-{config.tap_layer} mid-level token loss x{config.tap_weight:g}" if config.tap_weight else "",
             f"logit KD alpha {config.distill_alpha:g} at T={config.distill_temperature:g}" if config.distill_alpha
             else "no logit KD"]
    return "cached teacher targets: " + ", ".join(p for p in parts if p)


def split_hash_of(data: LabelledImages, splits: Splits) -> str:
    return "/".join(split_hash(data.ids, rows)[:16] for rows in splits.as_dict().values())


def lossless_check(root: Path, probabilities: Any) -> dict[str, Any]:
    """Same labels as plain and the largest probability difference, over the test images the variant saw."""
    import numpy as np

    plain_file = root / "eval" / "plain.json"
    if not plain_file.exists():
        raise BuildError("a lossless variant is checked against plain: build plain first")
    _, plain = read_predictions(plain_file)
    plain = plain[: len(probabilities)]  # a lossless variant may be checked on the first N test images only
    same = int((plain.argmax(-1) == probabilities.argmax(-1)).sum())
    return {"images": len(plain), "labels_equal": f"{same}/{len(plain)}",
            "max_probability_difference": float(np.abs(plain - probabilities).max())}


def untrained_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Scores of a never-trained model say nothing about a compression method: recorded as not applicable."""
    return {"count": metrics["count"], "evaluated_images": metrics.get("evaluated_images"), "f1": None,
            "accuracy": None, "applicable": False,
            "reason": "random-init base model, never trained: F1 and accuracy are not measures of the method"}


def build_one(request: BuildRequest, manifest: Manifest, name: str, test: TestImages, ctx_args: dict[str, Any]) -> None:
    """Build, load and evaluate one variant; a failure is recorded and does not stop the others."""
    spec, root = get_variant(name), request.artifacts_dir
    existing = manifest.variants.get(name)
    if existing and existing.get("status") == "ok" and not request.force:
        stale = stale_reasons(existing, spec, request.profile.options, manifest)
        if stale:
            log.info("%s: rebuilding: %s", name, "; ".join(stale))
        else:
            try:
                manifest.verify(name)
                log.info("%s: already built, skipping (use --force to rebuild)", name)
                return
            except Exception:  # noqa: BLE001 - a broken artifact is simply rebuilt
                log.info("%s: rebuilding: its files do not match the manifest", name)
    out_dir, options = root / name, RecordedOptions(request.profile.options)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    ctx = BuildContext(base_dir=root / BASE_DIR, out_dir=out_dir, work_dir=root / WORK_DIR / name,
                       label_names=manifest.data["label_names"], threads=request.threads,
                       options=options, cache_dir=root / WORK_DIR / "cache",
                       seed=request.profile.train.seed, device=request.device,
                       precision=request.profile.train.precision, **ctx_args)
    entry: dict[str, Any] = {"name": name, "runtime": spec.runtime, "summary": spec.summary,
                             "lossless": spec.lossless}
    started = time.perf_counter()
    try:
        missing = spec.missing_requirements(build=True)
        if missing:
            raise RuntimeError(f"missing packages: {', '.join(missing)}")
        entry["build"] = spec.build(ctx)
        entry["build_inputs"] = build_inputs(spec, options.read, manifest)
        entry["build_key"] = key_of(entry["build_inputs"])
        entry["runtime"] = entry["build"].pop("runtime", spec.runtime)
        entry["build_seconds"] = round(time.perf_counter() - started, 1)
        predictor = spec.predictor(out_dir, request.threads, device=request.device)
        predictor.load()
        checked = test.head(request.profile.lossless_eval_limit) if spec.lossless and name != "plain" else test
        evaluated = time.perf_counter()
        entry["metrics"], probabilities = evaluate(predictor, checked, manifest.data["label_names"])
        entry["metrics"]["evaluated_images"] = len(checked.ids)
        entry["eval_seconds"] = round(time.perf_counter() - evaluated, 1)
        if not base_is_trained(manifest.data["base_model"]):
            entry["metrics"] = untrained_metrics(entry["metrics"])
        write_predictions(root / "eval" / f"{name}.json", checked.ids, probabilities)
        entry["predictions_file"] = f"eval/{name}.json"
        if spec.lossless and name != "plain":
            entry["lossless_check"] = lossless_check(root, probabilities)
        make_readable(out_dir)
        entry["files"] = describe_files(root, out_dir)
        entry["size_mb"] = round(sum(f["bytes"] for f in entry["files"]) / 1e6, 3)
        entry["status"] = "ok"
        log.info("%s: built in %.1fs, F1 %s", name, entry["build_seconds"], entry["metrics"]["f1"])
    except Exception as exc:  # noqa: BLE001 - each builder is independent by design
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
        log.error("%s: FAILED: %s", name, entry["error"])
    manifest.variants[name] = entry
    manifest.save()
