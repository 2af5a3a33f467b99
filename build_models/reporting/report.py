"""artifacts/report.md, report.json and report.png from the manifest and its latency run.

Every figure here is read from the manifest, which the build and ``python -m build_models.bench``
write; nothing is typed. The README's tables are rendered from report.json by
``build_models.reporting.readme`` with the same functions.
"""

from __future__ import annotations

import json
from typing import Any

from build_models.reporting.plan_rows import plan_rows, plan_table
from build_models.reporting.plot import write_plot
from build_models.reporting.routes import route_rows, route_table_lines, write_route_plot
from build_models.reporting.seed_study import seed_comparison_table
from build_models.reporting.students import distillation_table, student_rows
from vitcore.catalogue import list_variants
from vitcore.manifest import Manifest

COLUMNS = ("Method", "Model Size (MB)", "F1", "Model p50 (IQR) ms", "End-to-end p50 (IQR) ms",
           "Service overhead ms", "Speedup vs plain (model / e2e)", "Parameters", "Sparsity", "Runtime",
           "GMAC/s (of its precision's peak)")


def _latency(stats: dict[str, Any] | None) -> dict[str, Any]:
    if not stats:
        return {}
    return {key: stats.get(key) for key in ("p50_ms", "p25_ms", "p75_ms", "mean_ms", "std_ms", "speedup_vs_plain",
                                            "overlaps_plain")}


def report_rows(manifest: Manifest) -> list[dict[str, Any]]:
    latency = manifest.data.get("latency", {}).get("results", {})
    order = {name: i for i, name in enumerate(list_variants())}
    held_out = not manifest.data.get("base_model", {}).get("evaluation_overlap")
    limits = (manifest.data.get("latency", {}).get("limit") or {}).get("rows", {})
    rows = []
    for name, entry in sorted(manifest.variants.items(), key=lambda kv: order.get(kv[0], 999)):
        build, metrics = entry.get("build", {}), entry.get("metrics") or {}
        measured = latency.get(name, {})
        rows.append({
            "variant": name, "runtime": entry.get("runtime"), "status": entry.get("status"),
            "size_mb": entry.get("size_mb"), "size_note": build.get("size_note"),
            "f1": metrics.get("f1"), "accuracy": metrics.get("accuracy"), "f1_ci95": metrics.get("f1_ci95"),
            "evaluated_images": metrics.get("count"),  # the images the F1 rests on
            # which images: the evaluation set (its id and sample seed), and for a lossless copy run on a sample of
            # it, "= plain (N/N same labels)"; absent from reports written before they were recorded
            **{key: metrics[key] for key in ("evaluation_set", "sample_seed", "f1_basis") if key in metrics},
            "model": _latency(measured.get("model")), "end_to_end": _latency(measured.get("end_to_end")),
            "service_overhead_ms": measured.get("service_overhead_ms"),
            "parameters": build.get("parameters"), "sparsity": build.get("sparsity"),
            **({"precision_note": build["precision_note"]} if build.get("precision_note") else {}),
            "lossless_check": entry.get("lossless_check"), "error": entry.get("error"),
            **({} if held_out else {"held_out": False}),  # the base was trained on these photos: marked with †
            **({"limit": limits[name]} if name in limits else {}),
        })
    return rows


def _fmt(value: Any, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _latency_cell(stats: dict[str, Any], is_plain: bool) -> str:
    if not stats.get("p50_ms"):
        return "not measured"
    cell = f"{stats['p50_ms']:.2f} ({stats['p25_ms']:.2f}-{stats['p75_ms']:.2f})"
    return cell + (" ≈" if stats.get("overlaps_plain") and not is_plain else "")


def _limit_cell(limit: dict[str, Any] | None) -> str:
    if not limit:
        return "-"
    return f"{limit['gmac_per_s']:.1f} ({limit['of_peak']:.1%} of {limit['precision']})"


def _speedup_cell(row: dict[str, Any]) -> str:
    parts = [_fmt(row[mode].get("speedup_vs_plain"), ".2f") + "x" if row[mode].get("speedup_vs_plain") else "-"
             for mode in ("model", "end_to_end")]
    return " / ".join(parts)


NOT_HELD_OUT_MARK = " †"  # the base checkpoint was trained on the photos this F1 was measured on


def _f1_cell(row: dict[str, Any], whole_split: int, evaluation_set: str | None = None,
             plain_row: dict[str, Any] | None = None) -> str:
    """F1 with its 95% bootstrap interval. A lossless copy checked on a sample of the evaluation set shows
    plain's F1 with the labels it matched there; a row whose F1 rests on other images than plain's is marked.
    Reports written before the evaluation set was recorded: the same rule where the row's lossless check found
    plain's labels on every image it saw, else marked when scored on fewer images than the others."""
    mark = NOT_HELD_OUT_MARK if row.get("held_out") is False else ""
    as_plain = _old_lossless_as_plain(row, whole_split, plain_row or {})
    if as_plain is not None:
        return as_plain + mark
    interval = row.get("f1_ci95")
    spread = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval and row["f1"] is not None else ""
    if row.get("evaluation_set"):
        other = evaluation_set and row["evaluation_set"] != evaluation_set
        note = f" (other images: {row.get('evaluated_images')}, set {row['evaluation_set']})" if other else ""
        basis = f" {row['f1_basis']}" if row.get("f1_basis") else ""
        return _fmt(row["f1"], ".4f") + spread + basis + note + mark
    seen = row.get("evaluated_images")
    subset = f" (first {seen} scored images)" if seen and seen < whole_split else ""
    return _fmt(row["f1"], ".4f") + spread + subset + mark


def _old_lossless_as_plain(row: dict[str, Any], whole_split: int, plain_row: dict[str, Any]) -> str | None:
    check, seen = row.get("lossless_check"), row.get("evaluated_images")
    if row.get("evaluation_set") or not check or not seen or seen >= whole_split:
        return None
    same, images = (int(part) for part in check["labels_equal"].split("/"))
    if same != images or plain_row.get("evaluated_images") != whole_split or plain_row.get("f1") is None:
        return None
    return _f1_cell(plain_row, whole_split) + f" = plain ({check['labels_equal']} same labels)"


def markdown_table(rows: list[dict[str, Any]], f1_applicable: bool = True,
                   routes: list[dict[str, Any]] | None = None) -> str:
    """The study table. ≈ marks a latency whose interquartile range overlaps plain's (within noise)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    whole_split = max((row.get("evaluated_images") or 0 for row in rows), default=0)
    plain_row = next((row for row in rows if row["variant"] == "plain"), {})
    evaluation_set = plain_row.get("evaluation_set")
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['variant']} | failed: {row['error']} |" + " |" * (len(COLUMNS) - 2))
            continue
        plain = row["variant"] == "plain"
        size = _fmt(row["size_mb"], ".2f") + (f" ({row['size_note']})" if row["size_note"] else "")
        f1 = _f1_cell(row, whole_split, evaluation_set, plain_row) if f1_applicable else "n/a (random init)"
        cells = [row["variant"], size, f1,
                 _latency_cell(row["model"], plain), _latency_cell(row["end_to_end"], plain),
                 _fmt(row["service_overhead_ms"], ".2f"), _speedup_cell(row), _fmt(row["parameters"], ",d"),
                 _fmt(row["sparsity"], ".1%", "-"), row["runtime"],
                 row.get("precision_note") or _limit_cell(row.get("limit"))]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if f1_applicable and routes:
        lines += route_table_lines(routes, len(COLUMNS))
    return "\n".join(lines)


def lossless_table(rows: list[dict[str, Any]]) -> str:
    checked = [r for r in rows if r.get("lossless_check")]
    if not checked:
        return ""
    lines = ["| variant | test images | same label as plain | max probability difference |", "|---|---|---|---|"]
    for row in checked:
        check = row["lossless_check"]
        lines.append(f"| {row['variant']} | {check['images']} | {check['labels_equal']} | "
                     f"{check['max_probability_difference']:.2e} |")
    return "\n".join(lines)


def machine_lines(machine: dict[str, Any]) -> list[str]:
    if not machine:
        return []
    cpu = machine.get("cpu", {})
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    groups: dict[str, list[str]] = {}
    for name, settings in machine.get("applied", {}).items():
        groups.setdefault(json.dumps(settings), []).append(name)
    applied = "; ".join(f"{', '.join(names)}: {settings}" for settings, names in groups.items())
    return [f"- machine: {cpu.get('model')}, {cpu.get('usable_cores')} usable cores, flags "
            f"{' '.join(cpu.get('flags', []))} ({cpu.get('int8_class')})",
            f"- packages: {packages}", f"- thread settings requested: {json.dumps(machine.get('threads_requested'))}",
            f"- applied, as read back from each runtime: {applied}"]


def base_model_story(base: dict[str, Any]) -> str:
    """One honest line on where the base model's weights came from and how it was trained."""
    training = base.get("training", {})
    weights = training.get("weights", "random init")
    if training.get("recipe") == "none":
        return f"{weights}; not trained ({training.get('reason', 'no budget')})"
    distilled = f", distilled from the teacher ({training['distillation']})" if base.get("teacher") else ""
    config = training.get("config", {})
    how = "".join([f", {training['precision']}" if "precision" in training else "",
                   f", first {config['low_res_fraction']:.0%} at {config['low_res_size']} px"
                   if config.get("low_res_fraction") else ""])
    return (f"{weights}; {training.get('recipe')} for {training.get('epochs', 0):.1f} epochs "
            f"({training.get('steps')} steps, {training.get('minutes', 0):.1f} min{how}){distilled}, "
            f"best validation accuracy {training.get('best_val_accuracy', 0):.4f}")


def teacher_line(teacher: dict[str, Any] | None) -> str:
    if not teacher:
        return ""
    return (f"- teacher (a build input, not served; a CNN): {teacher['model']}, {teacher['head']}; "
            f"test F1 {teacher['test_metrics']['f1']:.4f} (accuracy {teacher['test_metrics']['accuracy']:.4f}), "
            f"zero-shot accuracy by input normalisation {json.dumps(teacher['zero_shot_accuracy'])}, "
            f"{teacher['minutes']:.1f} min")


def evaluation_line(evaluation: dict[str, Any] | None) -> str | None:
    if not evaluation:
        return None
    named = f", set {evaluation['set_id']}, sample seed {evaluation['sample_seed']}" if "set_id" in evaluation else ""
    lossless = f"; {evaluation['lossless_subset']}" if evaluation.get("lossless_subset") else ""
    return (f"- every F1 scored on: {evaluation['images']} of {evaluation['test_split_images']} test images "
            f"({evaluation['selection']}{named}; class counts {evaluation['class_counts']}){lossless}; "
            f"F1 intervals: {evaluation['f1_interval']}")


def limit_line(limit: dict[str, Any] | None) -> str:
    """This machine's GEMM peaks (measured with the latency table's threads) and the row nearest its limit."""
    if not limit:
        return ""
    peaks = ", ".join(f"{p} {v['gmac_per_s']} GMAC/s" if v["applicable"] else f"{p} {v['reason']}"
                      for p, v in limit["peaks"].items())
    closest = limit.get("closest")
    best = limit["rows"][closest] if closest else None
    nearest = (f"; nearest its limit: {closest}, {best['gmac_per_s']:.1f} GMAC/s = {best['of_peak']:.1%} of the "
               f"{best['precision']} peak ({1 / best['of_peak']:.1f}x from it)") if best else ""
    return f"- GEMM peaks (OpenVINO, one {next(iter(limit['peaks'].values())).get('gemm', 'square')} GEMM): " \
           f"{peaks}{nearest}"


def base_is_trained(base: dict[str, Any]) -> bool:
    """False only for a random-init base model that was never trained (the vit-base timing profile)."""
    training = base.get("training", {})
    return not (training.get("recipe") == "none" and training.get("weights", "random init") == "random init")


def f1_is_meaningful(manifest: Manifest) -> bool:
    return base_is_trained(manifest.data.get("base_model", {}))


def write_report(manifest: Manifest) -> str:
    rows = report_rows(manifest)
    routes = route_rows(manifest.data)
    f1_applicable = f1_is_meaningful(manifest)
    base = manifest.data.get("base_model", {})
    latency = manifest.data.get("latency", {})
    root = manifest.root
    plotted = f1_applicable and write_plot(rows, root / "report.png", manifest.data.get("profile", ""),
                                           latency.get("limit"))
    split = manifest.data.get("dataset", {}).get("split", {})
    lines = [
        f"# vitserve report: profile `{manifest.data.get('profile')}`", "",
        f"- base model: `{base.get('source')}`: {base_model_story(base)}", teacher_line(base.get("teacher")),
        f"- dataset: `{manifest.data.get('dataset', {}).get('source')}`, test split "
        f"{split.get('test', {}).get('count')} images (sha256 {str(split.get('test', {}).get('sha256'))[:16]}...)",
        evaluation_line(manifest.data.get("evaluation")),
        f"- {NOT_HELD_OUT_MARK.strip()} not held out: {base['evaluation_overlap']['note']}"
        if base.get("evaluation_overlap") else "",
        f"- build wall time: {_fmt(manifest.data.get('build_seconds'), '.0f')} s over "
        f"{json.dumps(manifest.data.get('build_history', []))}",
        f"- latency: {json.dumps(latency.get('config', {}))}; p50 and interquartile range over interleaved "
        "rounds; ≈ marks a row whose IQR overlaps plain's", *machine_lines(latency.get("machine", {})),
        f"- fp32 floor: {json.dumps(latency['fp32_floor'])}" if "fp32_floor" in latency else "",
        limit_line(latency.get("limit")),
        "", markdown_table(rows, f1_applicable, routes), "",
    ]
    lossless = lossless_table(rows)
    if lossless:
        lines += ["## Lossless variants against plain (on the test images each was run on: the evaluation set, or a "
                  "stated stratified sample of it)", "", lossless, ""]
    students = student_rows(manifest.variants, rows)
    if students:
        lines += ["## Students against the ViT they learned from (same latency run)", "",
                  distillation_table(students), ""]
    planned = plan_rows(manifest.data)
    if planned:
        history = manifest.data.get("build_history", [])
        took = history[-1]["seconds"] / 60 if history else None
        lines += [f"## Plan printed before the build against what each phase took ({manifest.data['plan']['machine']})",
                  "", plan_table(planned, manifest.data["plan"], took), ""]
    seed = seed_comparison_table(rows, f1_applicable)
    lines += ["## Beside the seed study (ratios against each side's own plain)", "", seed, ""]
    if plotted:
        lines += ["![latency vs F1](report.png)", ""]
    if f1_applicable and write_route_plot(manifest.data, root / "report-cascade.png"):
        lines += ["![F1 against mean latency, with the cascade](report-cascade.png)", ""]
    (root / "report.md").write_text("\n".join(line for line in lines if line is not None))
    report = {"profile": manifest.data.get("profile"), "f1_applicable": f1_applicable, "rows": rows,
              "latency": latency, "base_model": {k: base.get(k) for k in ("source", "training", "teacher")},
              "build_seconds": manifest.data.get("build_seconds"),
              "build_history": manifest.data.get("build_history", []), "seed_comparison": seed,
              "students": students, "plan": manifest.data.get("plan"), "plan_rows": planned, "routes": routes,
              "cascade": manifest.data.get("cascade"),
              "calibration": {n: e.get("calibration") for n, e in manifest.variants.items() if e.get("calibration")},
              "evaluation": manifest.data.get("evaluation")}
    (root / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return str(root / "report.md")
