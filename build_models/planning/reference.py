"""``python -m build_models.planning.reference --artifacts DIR``: write the plan's reference costs from a real build.

The plan estimates every phase it does not measure from one reference build per profile: the time each
variant's build and evaluation took, the teacher's cost per image, the latency table's cost per run, and
the base model's inference cost per image on that machine (the scale against which another machine's
measured cost is compared). Regenerate it after a clean build (nothing else running on the machine).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from build_models.build_keys import ABSENT
from build_models.planning.plan import REFERENCE_FILE
from vitcore.preprocessing import PreprocessConfig


def reference_of(manifest: dict[str, Any], image_size: int | None = None) -> dict[str, Any]:
    """The reference record of one built artifacts folder (its manifest, as a dict; ``image_size``: its base
    model's input size when the manifest's plan does not say)."""
    costs = manifest.get("step_costs") or {}
    split = manifest["dataset"]["split"]
    base = manifest.get("base_model", {})
    teacher = base.get("teacher")
    record: dict[str, Any] = {
        "cpu": manifest["machine"]["model"], "flags": manifest["machine"]["flags"],
        "forward_ms_per_image": costs.get("forward_ms_per_image"),
        "image_size": manifest.get("plan", {}).get("image_size") or image_size,
        "train_images": split["train"]["count"],
        "variants": {name: _variant_record(entry) for name, entry in manifest["variants"].items()
                     if entry.get("status") == "ok" and "eval_seconds" in entry},
    }
    if teacher:
        check = teacher["config"]["normalisation_check_images"]
        images = sum(split[s]["count"] for s in ("train", "val", "test")) + 2 * check
        record.update(teacher_ms_per_image=round(teacher["minutes"] * 60_000 / images, 3),
                      teacher_resolution=teacher["config"]["resolution"])
    for entry in manifest["variants"].values():  # the students' one pass of the base model over their photos
        logits = entry.get("build", {}).get("distillation", {}).get("teacher_logits") or {}
        if logits and not logits.get("reused") and logits.get("minutes"):
            record.update(student_teacher_s_per_image=round(logits["minutes"] * 60 / logits["key"]["images"], 5),
                          student_teacher_resolution=logits["key"]["resolution"][0])
    latency = manifest.get("latency", {})
    runs = latency.get("config", {}).get("runs")
    if latency.get("seconds") and runs:
        record["latency_s_per_variant_run"] = round(latency["seconds"] / (runs * len(latency["results"])), 4)
    return record


def _variant_record(entry: dict[str, Any]) -> dict[str, Any]:
    options = {key: value for key, value in entry.get("build_inputs", {}).get("options", {}).items()
               if value != ABSENT}
    logits = entry.get("build", {}).get("distillation", {}).get("teacher_logits") or {}
    teacher_s = 0.0 if logits.get("reused") or not logits.get("minutes") else logits["minutes"] * 60
    metrics = entry["metrics"]  # eval_s timed the images the variant ran on (a lossless copy: maybe a sample)
    return {"build_s": entry["build_seconds"], "teacher_s": round(teacher_s, 1), "eval_s": entry["eval_seconds"],
            "eval_images": metrics.get("evaluated_images") or metrics["count"], "lossless": bool(entry.get("lossless")),
            "options": options}


def write_reference(artifacts: Path, out: Path = REFERENCE_FILE) -> dict[str, Any]:
    manifest = json.loads((artifacts / "manifest.json").read_text())
    references = json.loads(out.read_text()) if out.exists() else {}
    base = PreprocessConfig.from_dir(artifacts / "base")
    references[manifest["profile"]] = reference_of(manifest, base.height)
    out.write_text(json.dumps(references, indent=1, sort_keys=True) + "\n")
    return references


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m build_models.planning.reference", description=__doc__)
    p.add_argument("--artifacts", type=Path, required=True, help="a built artifacts folder")
    p.add_argument("--out", type=Path, default=REFERENCE_FILE)
    args = p.parse_args(argv)
    references = write_reference(args.artifacts, args.out)
    print(f"{args.out}: references for {', '.join(sorted(references))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
