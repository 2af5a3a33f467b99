"""Each selected variant: built by its catalogue builder, loaded by its predictor, scored, recorded."""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from build_models.build_keys import RecordedOptions, build_inputs, key_of, stale_reasons
from build_models.context import BuildContext
from build_models.measure.evaluate import TestImages, evaluate, read_predictions, write_predictions
from build_models.pipeline.progress import progress_step
from build_models.pipeline.request import BASE_DIR, WORK_DIR, BuildRequest
from build_models.profiles import BuildProfile
from build_models.reporting.report import base_is_trained
from vitcore.build_progress import BuildProgress
from vitcore.catalogue import BASE_VARIANT, get_variant
from vitcore.errors import BuildError
from vitcore.manifest import Manifest, describe_files, make_readable

log = logging.getLogger(__name__)


def build_variants(request: BuildRequest, manifest: Manifest, names: list[str], test: TestImages,
                   ctx_args: dict[str, Any], validation: TestImages | None = None,
                   progress: BuildProgress | None = None) -> None:
    """Each variant in turn; one that fails is recorded as failed and the next one still builds. With
    ``validation`` (the selection set), each is also scored there: the router chooses on that F1."""
    for name in names:
        with progress_step(progress, name):
            build_one(request, manifest, name, test, ctx_args, validation)
        if progress is not None and manifest.variants.get(name, {}).get("status") != "ok":
            progress.step_done(name, state="failed")


def still_valid(manifest: Manifest, name: str, profile: BuildProfile) -> bool:
    entry = manifest.variants.get(name)
    return bool(entry and entry.get("status") == "ok"
                and not stale_reasons(entry, get_variant(name), profile.options, manifest))


def lossless_check(root: Path, ids: list[str], probabilities: Any) -> dict[str, Any]:
    """Same labels as plain and the largest probability difference, over the test images the variant saw
    (matched to plain's predictions by image id)."""
    import numpy as np

    plain_file = root / "eval" / "plain.json"
    if not plain_file.exists():
        raise BuildError("a lossless variant is checked against plain: build plain first")
    plain_ids, plain_all = read_predictions(plain_file)
    position = {image_id: i for i, image_id in enumerate(plain_ids)}
    missing = [image_id for image_id in ids if image_id not in position]
    if missing:
        raise BuildError(f"plain was not scored on {len(missing)} of these test images: rebuild plain")
    plain = plain_all[[position[image_id] for image_id in ids]]
    same = int((plain.argmax(-1) == probabilities.argmax(-1)).sum())
    return {"images": len(plain), "labels_equal": f"{same}/{len(plain)}",
            "max_probability_difference": float(np.abs(plain - probabilities).max())}


def gives_plains_labels(check: dict[str, Any] | None) -> bool:
    """A lossless copy whose check found plain's label on every test image it saw."""
    if not check:
        return False
    same, images = (int(part) for part in check["labels_equal"].split("/"))
    return same == images


def evaluation_facts(test: TestImages, seed: int) -> dict[str, Any]:
    """What every F1 of the build rests on: the evaluation set's size, its sample seed and its id."""
    return {"images": len(test.ids), "sample_seed": seed, "evaluation_set": test.set_id()}


def plain_metrics_for(manifest: Manifest, check: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any] | None:
    """Plain's metrics for a lossless copy checked on a sample of the evaluation set, when that sample shows it
    gives plain's label on every image and plain was scored on the same evaluation set; else None."""
    plain = manifest.variants.get(BASE_VARIANT, {})
    metrics = plain.get("metrics") or {}
    if (not gives_plains_labels(check) or plain.get("status") != "ok"
            or metrics.get("evaluation_set") != facts["evaluation_set"]):
        return None
    return {**metrics, "f1_source": BASE_VARIANT,
            "f1_basis": f"= plain ({check['labels_equal']} same labels)"}


def untrained_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Scores of a never-trained model say nothing about a compression method: recorded as not applicable."""
    return {"count": metrics["count"], "evaluated_images": metrics.get("evaluated_images"), "f1": None,
            "accuracy": None, "applicable": False,
            **{key: metrics[key] for key in ("images", "sample_seed", "evaluation_set") if key in metrics},
            "reason": "random-init base model, never trained: F1 and accuracy are not measures of the method"}


def selection_score(predictor: Any, validation: TestImages, manifest: Manifest, name: str,
                    as_plain: bool) -> dict[str, Any]:
    """F1 on the selection set (validation photos), what the router and the report's ``auto`` row choose on;
    a lossless copy that gave plain's labels on the test images takes plain's."""
    facts = {"images": len(validation.ids), "set_id": validation.set_id()}
    plain = manifest.variants.get(BASE_VARIANT, {}).get("validation") or {}
    if as_plain and plain.get("set_id") == facts["set_id"]:
        return {**plain, "f1_source": BASE_VARIANT}
    if not base_is_trained(manifest.data["base_model"]):
        return {"f1": None, **facts}
    metrics, _ = evaluate(predictor, validation, manifest.data["label_names"])
    return {"f1": metrics["f1"], "accuracy": metrics["accuracy"], "f1_ci95": metrics.get("f1_ci95"), **facts}


def _rescore_selection(request: BuildRequest, manifest: Manifest, name: str, validation: TestImages) -> None:
    """A variant built before its selection score was recorded (or on other validation photos): score it now."""
    entry = manifest.variants[name]
    if (entry.get("validation") or {}).get("set_id") == validation.set_id():
        return
    try:
        predictor = get_variant(name).predictor(request.artifacts_dir / name, request.threads, device=request.device)
        predictor.load()
        entry["validation"] = selection_score(predictor, validation, manifest, name,
                                              gives_plains_labels(entry.get("lossless_check")))
    except Exception as exc:  # noqa: BLE001 - e.g. its runtime is not installed here: built, just not routable
        log.warning("%s: not scored on the selection set (%s: %s); the router will not choose it until it is",
                    name, type(exc).__name__, exc)
        return
    manifest.save()


def build_one(request: BuildRequest, manifest: Manifest, name: str, test: TestImages, ctx_args: dict[str, Any],
              validation: TestImages | None = None) -> None:
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
            except Exception:  # noqa: BLE001 - a broken artifact is simply rebuilt
                log.info("%s: rebuilding: its files do not match the manifest", name)
            else:
                if validation is not None:
                    _rescore_selection(request, manifest, name, validation)
                return
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
        facts = evaluation_facts(test, request.profile.split.seed)
        lossless_copy = spec.lossless and name != BASE_VARIANT
        checked = test.sample(request.profile.lossless_eval_limit, request.profile.split.seed) if lossless_copy \
            else test
        evaluated = time.perf_counter()
        entry["metrics"], probabilities = evaluate(predictor, checked, manifest.data["label_names"])
        if lossless_copy:
            entry["lossless_check"] = lossless_check(root, checked.ids, probabilities)
            as_plain = plain_metrics_for(manifest, entry["lossless_check"], facts) if checked is not test else None
            if as_plain is not None:  # the same labels as plain on the sample: plain's F1 on the evaluation set
                entry["metrics"] = as_plain
            elif checked is not test:  # a label differs (or plain's F1 rests on other images): measure it all
                log.info("%s: not plain's labels on the lossless sample; scoring the whole evaluation set", name)
                checked = test
                entry["metrics"], probabilities = evaluate(predictor, checked, manifest.data["label_names"])
                entry["lossless_check"] = lossless_check(root, checked.ids, probabilities)
        entry["metrics"].update(facts, evaluated_images=len(checked.ids))
        entry["eval_seconds"] = round(time.perf_counter() - evaluated, 1)
        if not base_is_trained(manifest.data["base_model"]):
            entry["metrics"] = untrained_metrics(entry["metrics"])
        if manifest.data["base_model"].get("evaluation_overlap"):  # trained on these photos: base_model says why
            entry["metrics"]["held_out"] = False
        if validation is not None:
            entry["validation"] = selection_score(predictor, validation, manifest, name,
                                                  gives_plains_labels(entry.get("lossless_check")))
        write_predictions(root / "eval" / f"{name}.json", checked.ids, probabilities)
        entry["predictions_file"] = f"eval/{name}.json"
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
