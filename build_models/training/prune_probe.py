"""``python -m build_models.training.prune_probe``: what the least-squares refit recovers, on photos no build saw.

Prunes a built base model (``--base artifacts/base``) by each amount, scores it as cut and as refit on a
stratified sample of dataset photos outside the build's split, and times both against the unpruned model in the
same run (torch eager, the process's threads). Writes the figures as JSON (``docs/probes-pruning.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from build_models.training.prune import PruneAmount, prune_and_refit
from vitcore.hardware import cpu_facts

AMOUNTS = (0.1, 0.4, 0.5)


def _held_out(base: Path, dataset: str, calibration: int, evaluation: int) -> tuple[Any, Any, np.ndarray]:
    import torch

    from build_models.sources.dataset import decode_pixels, load_labelled_images, stratified_subset
    from vitcore.preprocessing import PreprocessConfig, normalize_uint8

    config = PreprocessConfig.from_dir(base)
    data = load_labelled_images(dataset)
    split = json.loads((base.parent / "split.json").read_text())
    used = {image_id for ids in split.values() for image_id in ids}
    rows = np.array([r for r in range(len(data.labels)) if data.ids[r] not in used])
    chosen = stratified_subset(rows, data.labels[rows], calibration, seed=1)
    rest = np.setdiff1d(rows, chosen)
    scored = stratified_subset(rest, data.labels[rest], evaluation, seed=2)
    pixels = [decode_pixels(data, r, config, None) for r in (chosen, scored)]
    return (torch.from_numpy(normalize_uint8(pixels[0][0], config)),
            torch.from_numpy(normalize_uint8(pixels[1][0], config)), data.labels[pixels[1][1]])


def _score(model: Any, pixels: Any, labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Predictions, accuracy and ms per image (batches of 8, best of 3)."""
    import torch

    with torch.inference_mode():
        predictions = torch.cat([model(pixel_values=pixels[i:i + 32]).logits.argmax(-1)
                                 for i in range(0, len(pixels), 32)]).numpy()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model(pixel_values=pixels[:8])
            times.append((time.perf_counter() - start) / 8 * 1000)
    return predictions, float((predictions == labels).mean()), min(times)


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def main() -> None:
    from transformers import AutoModelForImageClassification

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a build's base model folder (split.json beside)")
    parser.add_argument("--dataset", default="../shared/datasets/cats_vs_dogs")
    parser.add_argument("--calibration", type=int, default=256)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    calibration, pixels, labels = _held_out(args.base, args.dataset, args.calibration, args.images)
    plain = AutoModelForImageClassification.from_pretrained(str(args.base)).eval()
    reference, accuracy, ms = _score(plain, pixels, labels)
    rows: list[dict[str, Any]] = [{"amount": 0.0, "accuracy": accuracy, "ms_per_image": round(ms, 2)}]
    print(rows[0], flush=True)
    for amount in AMOUNTS:
        for refit in (False, True):
            model = AutoModelForImageClassification.from_pretrained(str(args.base)).eval()
            prune_and_refit(model, calibration, PruneAmount(amount, amount), refit_layers=refit,
                            progress=lambda _: None)
            predictions, accuracy, ms = _score(model, pixels, labels)
            rows.append({"amount": amount, "recovery": "refit" if refit else "none", "accuracy": accuracy,
                         "agreement_with_unpruned": float((predictions == reference).mean()),
                         "parameters": sum(p.numel() for p in model.parameters()), "ms_per_image": round(ms, 2)})
            print(rows[-1], flush=True)
    record = {"command": "python -m build_models.training.prune_probe " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v is not None), "base": str(args.base),
        "held_out_images": len(labels), "calibration_images": len(calibration), "cpu": cpu_facts(),
        "torch_threads": _threads(), "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
