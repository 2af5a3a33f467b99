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
from build_models.pipeline.request import BASE_DIR, WORK_DIR, BuildRequest
from build_models.profiles import BuildProfile
from build_models.reporting.report import base_is_trained
from vitcore.catalogue import BASE_VARIANT, get_variant
from vitcore.errors import BuildError
from vitcore.manifest import Manifest, describe_files, make_readable

log = logging.getLogger(__name__)


def build_variants(request: BuildRequest, manifest: Manifest, names: list[str], test: TestImages,
                   ctx_args: dict[str, Any]) -> None:
    """Each variant in turn; one that fails is recorded as failed and the next one still builds."""
    for name in names:
        build_one(request, manifest, name, test, ctx_args)


def still_valid(manifest: Manifest, name: str, profile: BuildProfile) -> bool:
    entry = manifest.variants.get(name)
    return bool(entry and entry.get("status") == "ok"
                and not stale_reasons(entry, get_variant(name), profile.options, manifest))


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
        checked = test.head(request.profile.lossless_eval_limit) if spec.lossless and name != BASE_VARIANT else test
        evaluated = time.perf_counter()
        entry["metrics"], probabilities = evaluate(predictor, checked, manifest.data["label_names"])
        entry["metrics"]["evaluated_images"] = len(checked.ids)
        entry["eval_seconds"] = round(time.perf_counter() - evaluated, 1)
        if not base_is_trained(manifest.data["base_model"]):
            entry["metrics"] = untrained_metrics(entry["metrics"])
        write_predictions(root / "eval" / f"{name}.json", checked.ids, probabilities)
        entry["predictions_file"] = f"eval/{name}.json"
        if spec.lossless and name != BASE_VARIANT:
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
