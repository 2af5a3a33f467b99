"""README and docs/ figures generated from the committed reports, never typed.

The pages are ``README.md`` and every ``docs/*.md`` except the published reports (``docs/report-*.md``,
copies of a build's report.md). ``python -m build_models.reporting.readme publish --artifacts artifacts``
copies a build's report.json / report.md / report.png to ``docs/report-<profile>.*`` and rewrites every
generated block of every page (``write`` only rewrites); ``python -m build_models.reporting.readme check``
fails when a block of any page differs from what the committed ``docs/`` reports give, or when a page has
a block marker that does not close (the test suite runs it).

A block is ``<!-- generated:<kind>:<profile> -->`` ... ``<!-- /generated -->``; kinds: ``table``,
``facts``, ``lossless``, ``seed``, ``students``, ``planned``, ``cascade`` (from ``docs/report-<profile>.json``),
``load``, ``container``, ``probes``, ``faults``, ``cmd1``, ``plan``, ``peaks`` (from ``docs/<kind>-<name>.json``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from build_models.reporting.plan_rows import plan_table
from build_models.reporting.report import base_model_story, lossless_table, machine_lines, markdown_table
from build_models.reporting.routes import cascade_block
from build_models.reporting.seed_study import seed_comparison_table
from build_models.reporting.students import distillation_table

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"(<!-- generated:(\w+):([\w-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)
OPENING = re.compile(r"<!-- generated:")
PUBLISHED_REPORT = "report-*.md"  # docs/report-<profile>.md: a build's own report.md, copied, not a page


def _facts(report: dict[str, Any]) -> str:
    base = report["base_model"]
    lines = [f"- base model `{base['source']}`: {base_model_story(base)}"]
    teacher = base.get("teacher")
    if teacher:
        test = teacher["test_metrics"]
        lines.append(f"- teacher: {teacher['model']}, {teacher['head']}: test F1 {test['f1']:.4f}, accuracy "
                     f"{test['accuracy']:.4f}; zero-shot accuracy by input normalisation "
                     f"{json.dumps(teacher['zero_shot_accuracy'])}; {teacher['minutes']:.1f} min")
    history = base.get("training", {}).get("history", [])
    if history:
        curve = ", ".join(f"{h.get('epoch', 0):.1f}: {h['val_accuracy']:.3f}" for h in history)
        lines.append(f"- validation accuracy by epoch: {curve}")
    if report.get("build_seconds"):
        history = report.get("build_history", [])
        runs = " + ".join(f"{run['seconds'] / 60:.1f} min ({run['variants']})" for run in history)
        total = f"- whole build wall time: {report['build_seconds'] / 60:.1f} min"
        lines.append(total + (f" = {runs}" if runs else ""))
    lines += machine_lines(report.get("latency", {}).get("machine", {}))
    return "\n".join(lines)


def render(kind: str, report: dict[str, Any]) -> str:
    if kind == "table":
        return markdown_table(report["rows"], report["f1_applicable"], report.get("routes"))
    if kind == "facts":
        return _facts(report)
    if kind == "lossless":
        return lossless_table(report["rows"])
    if kind == "seed":  # rendered from the rows and the quoted seed figures now, not read back from the report
        return seed_comparison_table(report["rows"], report["f1_applicable"])
    if kind == "students":
        return distillation_table(report.get("students", [])) or "(no student in this build)"
    if kind == "planned":
        plan, history = report.get("plan"), report.get("build_history", [])
        took = history[-1]["seconds"] / 60 if history else None
        return plan_table(report.get("plan_rows", []), plan, took) if plan else "(no plan recorded in this build)"
    if kind == "cascade":
        return cascade_block(report)
    raise ValueError(f"unknown generated block kind {kind!r}")


def render_plan_estimate(plan: dict[str, Any]) -> str:
    """A plan printed by ``python -m build_models --plan`` (docs/plan-<name>.json): phases, basis, total."""
    lines = [f"Plan on {plan['machine']}, training in {plan['precision']}:", "",
             "| phase | minutes | basis | what |", "|---|---|---|---|"]
    lines += [f"| {p['name']} | {p['minutes']:.1f} | {p['basis']} | {p['detail']} |" for p in plan["phases"]]
    lines.append(f"| **total** | **{plan['total_minutes']:.1f}** | | |")
    lines += [f"- {hint}" for hint in plan.get("hints", [])]
    return "\n".join(lines)


def render_load(result: dict[str, Any]) -> str:
    """A load scenario's printed figures (docs/load-<scenario>.json) as a table and notes."""
    table = result["table"]
    columns = list(table[0]) if table else []
    lines = [f"`{result['scenario']}`: {result['command']}", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in table]
    return "\n".join(lines + [""] + [f"- {note}" for note in result["notes"]])


def render_faults(result: dict[str, Any]) -> str:
    """The fault-injection suite's results (docs/faults-<name>.json, from ``python -m loadtests.faults``)."""
    summary = result["summary"]
    lines = [f"`{result['command']}`", "", "| fault | requests | statuses | lost | undocumented 5xx | checks |",
             "|---|---|---|---|---|---|"]
    for s in result["scenarios"]:
        passed = sum(s["checks"].values())
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(s["statuses"].items()))
        lines.append(f"| {s['scenario']} | {s['requests']} | {statuses} | {s['lost']} | {len(s['unexpected_5xx'])} "
                     f"| {passed}/{len(s['checks'])} passed |")
    failed = "; ".join(summary["checks_failed"]) or "none"
    machine = result.get("machine", {})
    return "\n".join(lines + ["", f"- suite: {summary['requests']} requests, {summary['lost']} accepted and lost, "
                                  f"{summary['unexpected_5xx']} undocumented 5xx; failed checks: {failed}",
                               f"- machine: {machine.get('model')}, {machine.get('usable_cores')} usable cores, "
                               f"flags {' '.join(machine.get('flags', []))}"])


def render_key_values(result: dict[str, Any]) -> str:
    """A flat result (docs/container-<name>.json, written by deploy/container_test.sh) as a two-column table."""
    lines = ["| figure | value |", "|---|---|"]
    return "\n".join(lines + [f"| {key} | {value} |" for key, value in result.items()])


def render_peaks(result: dict[str, Any]) -> str:
    """This machine's GEMM peaks (docs/peaks-<name>.json, printed by ``python -m build_models.measure.peak``)."""
    lines = ["| precision | GMAC/s | GEMM | runs as |", "|---|---|---|---|"]
    for precision, peak in result["peaks"].items():
        lines.append(f"| {precision} | {peak['gmac_per_s']} | {peak['gemm']} | {'/'.join(peak['runtime_precision'])} |"
                     if peak["applicable"] else f"| {precision} | - | - | {peak['reason']} |")
    machine = result["machine"]
    return "\n".join(lines + ["", f"- machine: {machine['model']}, {machine['usable_cores']} usable cores, flags "
                                  f"{' '.join(machine['flags'])} ({machine['int8_class']})"])


def render_partial_probes(entries: list[dict[str, Any]]) -> str:
    """Last-blocks fine-tuning probes of a pretrained profile (``kind: partial``)."""
    lines = ["| recipe | trained blocks | train images | epochs | lr blocks / head | cached states | cache min "
             "| train min | val images | val accuracy (best) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        r = e["recipe"]
        lines.append(f"| {e['label']} | {r['trainable_blocks']} | {e['train_images']} | {e['epochs']:.2f} | "
                     f"{r['lr_blocks']:g} / {r['lr_head']:g} | {e['cache_precision']} | {e['cache_minutes']:.1f} | "
                     f"{e['minutes']:.1f} | {e['val_images']} | {e['val_accuracy']:.4f} "
                     f"({e['best_val_accuracy']:.4f}) |")
    return "\n".join(lines)


def render_pruning_probe(probe: dict[str, Any]) -> str:
    """``python -m build_models.training.prune_probe``'s figures: each amount as cut and as refit."""
    cpu = probe["cpu"]
    lines = [f"{probe['held_out_images']} held-out photos, {probe['calibration_images']} calibration photos; CPU "
             f"{cpu['model']} ({' '.join(cpu['flags']) or 'no AVX-512/VNNI/BF16/AMX flags'}), torch "
             f"{probe['torch_threads']} threads, batch 8 eager.", "",
             "| removed (heads and MLP neurons) | recovery | accuracy | same label as unpruned | parameters "
             "| ms per image |", "|---|---|---|---|---|---|"]
    for row in probe["rows"]:
        agreement = f"{row['agreement_with_unpruned']:.1%}" if "agreement_with_unpruned" in row else "-"
        parameters = f"{row['parameters']:,d}" if "parameters" in row else "-"
        lines.append(f"| {row['amount']:.0%} | {row.get('recovery', '-')} | {row['accuracy']:.4f} | {agreement} | "
                     f"{parameters} | {row['ms_per_image']:.2f} |")
    return "\n".join(lines)


def render_probes(entries: list[dict[str, Any]] | dict[str, Any]) -> str:
    """Recipe probes (docs/probes-<profile>.json, written by ``python -m build_models.probe``) as a table of the
    settings each trained with."""
    if isinstance(entries, dict):
        return render_pruning_probe(entries)
    if entries and all(e.get("kind") == "partial" for e in entries):
        return render_partial_probes(entries)
    lines = ["| recipe | logit KD alpha | token loss | mid-level loss (layer) | class-token loss | first at 64 px | lr "
             "| precision | steps | epochs | wall min | val accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        r = e["recipe"]
        mid = f"{r['tap_weight']:g} ({r['tap_layer']})" if r["tap_weight"] else "-"
        lines.append(f"| {e['label']} | {r['distill_alpha']:g} | {r['feature_weight']:g} | {mid} | "
                     f"{r['pooled_weight']:g} | {r['low_res_fraction']:.0%} | {r['lr']:g} | {r['precision']} | "
                     f"{e['steps']} | {e['epochs']:.2f} | {e['minutes']:.1f} | {e['val_accuracy']:.4f} |")
    return "\n".join(lines)


def regenerate(readme: str, docs: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(2), match.group(3)
        if kind == "load":
            body = render_load(json.loads((docs / f"load-{name}.json").read_text()))
        elif kind == "probes":
            body = render_probes(json.loads((docs / f"probes-{name}.json").read_text()))
        elif kind == "faults":
            body = render_faults(json.loads((docs / f"faults-{name}.json").read_text()))
        elif kind == "cmd1":
            timing = json.loads((docs / f"cmd1-{name}.json").read_text())
            body = (f"**{timing['seconds'] / 60:.1f} min** ({timing['seconds']} s; CPU {timing['cpu']}, flags "
                    f"{timing['flags']}, {timing['cores']} cores)")
        elif kind == "plan":
            body = render_plan_estimate(json.loads((docs / f"plan-{name}.json").read_text()))
        elif kind == "peaks":
            body = render_peaks(json.loads((docs / f"peaks-{name}.json").read_text()))
        elif kind == "container":
            body = render_key_values(json.loads((docs / f"container-{name}.json").read_text()))
        else:
            body = render(kind, json.loads((docs / f"report-{name}.json").read_text()))
        return f"{match.group(1)}{body}\n{match.group(5)}"

    return BLOCK.sub(replace, readme)


def pages(readme: Path, docs: Path) -> list[Path]:
    """The files whose generated blocks are kept in step: the README, then every docs/*.md page in name
    order (the published reports excepted)."""
    published = set(docs.glob(PUBLISHED_REPORT))
    return [readme, *sorted(page for page in docs.glob("*.md") if page not in published)]


def unclosed_blocks(text: str) -> int:
    """How many ``<!-- generated:`` markers of a page are not the start of a well-formed block."""
    return len(OPENING.findall(text)) - len(BLOCK.findall(text))


def publish(artifacts: Path, docs: Path) -> str:
    report = json.loads((artifacts / "report.json").read_text())
    profile = report["profile"]
    docs.mkdir(parents=True, exist_ok=True)
    for suffix in ("json", "md", "png"):
        source = artifacts / f"report.{suffix}"
        if source.exists():
            shutil.copy2(source, docs / f"report-{profile}.{suffix}")
    return profile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m build_models.reporting.readme", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("publish", "publish-load", "check", "write"))
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--docs", type=Path, default=ROOT / "docs",
                   help="the published reports, and the pages (docs/*.md) kept in step with the README")
    args = p.parse_args(argv)
    if args.action == "publish":
        print(f"published profile {publish(args.artifacts, args.docs)} to {args.docs}")
    if args.action == "publish-load":  # --artifacts names the scenarios' --out folder here
        for result in sorted(Path(args.artifacts).glob("*.json")):
            shutil.copy2(result, args.docs / f"load-{result.name}")
            print(f"published {result.name}")
    stale, broken, blocks = [], [], 0
    for page in pages(args.readme, args.docs):
        current = page.read_text()
        generated = regenerate(current, args.docs)
        blocks += len(BLOCK.findall(generated))
        if unclosed_blocks(current):
            broken.append(page)
        if generated == current:
            continue
        stale.append(page)
        if args.action != "check":
            page.write_text(generated)
            print(f"rewrote the generated blocks of {page}")
    for page in broken:
        print(f"{page}: a <!-- generated:<kind>:<name> --> marker without its <!-- /generated --> (or with a "
              "malformed name)", file=sys.stderr)
    if args.action == "check":
        for page in stale:
            print(f"{page} differs from the tables that {args.docs} gives: run "
                  "python -m build_models.reporting.readme write", file=sys.stderr)
        if stale or broken:
            return 1
        print(f"{blocks} generated blocks in README and docs/ pages match docs/ reports")
        return 0
    print(f"{blocks} generated blocks in {len(pages(args.readme, args.docs))} pages; {len(stale)} pages rewritten")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
