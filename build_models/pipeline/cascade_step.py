"""The build's last step: calibrate every candidate and choose the cascade on the validation split."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from build_models.measure.cascade import Scored, choose_cascade, frontier, measure_on_test, score_candidate
from build_models.measure.evaluate import TestImages, evaluate, read_predictions
from build_models.pipeline.request import BuildRequest
from build_models.sources.dataset import LabelledImages, Splits, stratified_subset
from vitcore.catalogue import get_variant, list_variants
from vitcore.loading import load_predictor
from vitcore.logs import configure_logging
from vitcore.manifest import Manifest
from vitcore.threads import ThreadSettings

log = logging.getLogger(__name__)

VALIDATION_IMAGES = 1000  # option cascade_val_images


def candidates(manifest: Manifest) -> list[str]:
    """Built variants with a measured F1 and latency; lossless copies of plain add nothing but time."""
    latency = manifest.data.get("latency", {}).get("results", {})
    return [name for name in list_variants()
            if manifest.variants.get(name, {}).get("status") == "ok" and name in latency
            and manifest.variants[name].get("metrics", {}).get("f1") is not None
            and get_variant(name).cascade_candidate]


def e2e_means(manifest: Manifest) -> dict[str, float]:
    results = manifest.data.get("latency", {}).get("results", {})
    return {name: float(r["end_to_end"]["mean_ms"]) for name, r in results.items() if r.get("end_to_end")}


def score_on_validation(manifest: Manifest, names: list[str], images: TestImages, threads: ThreadSettings,
                        labels: np.ndarray) -> list[Scored]:
    means, scored = e2e_means(manifest), []
    for name in names:
        predictor = load_predictor(manifest, name, threads)
        _, probabilities = evaluate(predictor, images, manifest.data["label_names"])
        scored.append(score_candidate(name, probabilities, labels, means[name]))
        manifest.variants[name]["calibration"] = scored[-1].calibration.as_dict()
    return scored


def test_probabilities(root: Path, name: str, ids: list[str]) -> np.ndarray:
    stored_ids, probabilities = read_predictions(root / "eval" / f"{name}.json")
    position = {image_id: i for i, image_id in enumerate(stored_ids)}
    return probabilities[[position[i] for i in ids]]


def build_cascade(manifest: Manifest, data: LabelledImages, splits: Splits, threads: ThreadSettings,
                  options: dict[str, Any], test: TestImages, seed: int = 0) -> dict[str, Any] | None:
    """Calibrations into each variant's entry, the cascade into ``manifest.data["cascade"]``."""
    started = time.perf_counter()
    names = candidates(manifest)
    if len(names) < 2:
        return None
    count = int(options.get("cascade_val_images", VALIDATION_IMAGES))
    rows = stratified_subset(splits.val, data.labels[splits.val], count, seed)
    labels = data.labels[rows]
    scored = score_on_validation(manifest, names, TestImages.decode(data, rows), threads, labels)
    choice = choose_cascade(scored, labels)
    if choice is None:
        return None
    calibrations = {s.name: s.calibration for s in scored}
    first, then = (test_probabilities(manifest.root, choice[k], test.ids) for k in ("first", "then"))
    choice["test"] = measure_on_test(choice, test.labels, first, then, calibrations, e2e_means(manifest))
    choice["frontier"] = frontier(scored, labels, choice)
    choice["validation"]["class_counts"] = np.bincount(labels, minlength=len(data.label_names)).tolist()
    choice["seconds"] = round(time.perf_counter() - started, 1)
    manifest.data["cascade"] = choice
    log.info("cascade: %s then %s below %.4f: validation F1 %.4f, test F1 %.4f at %.2f ms (escalated %.1f%%)",
             choice["first"], choice["then"], choice["threshold"], choice["validation"]["f1"], choice["test"]["f1"],
             choice["test"]["mean_ms"], 100 * choice["test"]["escalation_rate"])
    return choice


def _rows(ids: list[str]) -> np.ndarray:
    return np.asarray([int(image_id.split(":", 1)[0]) for image_id in ids])


def main(argv: list[str] | None = None) -> int:
    """``python -m build_models.pipeline.cascade_step --artifacts DIR``: (re)choose the cascade of an existing build."""
    import argparse
    import json

    from build_models.reporting.report import write_report
    from build_models.sources.dataset import load_labelled_images

    p = argparse.ArgumentParser(prog="python -m build_models.pipeline.cascade_step", description=main.__doc__)
    p.add_argument("--artifacts", type=Path, required=True)
    p.add_argument("--dataset", help="the dataset the build read (default: the one its manifest names)")
    args = p.parse_args(argv)
    configure_logging()
    manifest = Manifest.load(args.artifacts)
    data = load_labelled_images(args.dataset or manifest.data["dataset"]["source"])
    split_ids = json.loads((args.artifacts / "split.json").read_text())
    splits = Splits(**{name: _rows(ids) for name, ids in split_ids.items()})
    test_ids, _ = read_predictions(args.artifacts / "eval" / "plain.json")
    test = TestImages(test_ids, data.labels[_rows(test_ids)], [])
    choice = build_cascade(manifest, data, splits, ThreadSettings(), manifest.data.get("options", {}), test,
                           manifest.data["dataset"]["split"].get("seed", 0))
    manifest.save()
    write_report(manifest)
    print(json.dumps(choice, indent=1) if choice else "no cascade: fewer than two candidates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def choose_cascade_step(request: BuildRequest, manifest: Manifest, data: LabelledImages, splits: Splits,
                        test: TestImages) -> None:
    """Calibrate the candidates and choose the cascade (validation split); a failure costs only the cascade."""
    try:
        build_cascade(manifest, data, splits, request.threads, request.profile.options, test,
                      request.profile.split.seed)
    except Exception as exc:  # noqa: BLE001 - the variants stand without it
        manifest.data["cascade"] = {"error": f"{type(exc).__name__}: {exc}"}
        log.exception("cascade: not chosen")
