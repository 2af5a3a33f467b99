"""README figures are generated from the committed docs/ reports; a hand edit is caught."""

import json

from build_models.reporting.readme import BLOCK, ROOT, main, regenerate


def test_committed_readme_matches_committed_reports():
    assert main(["check"]) == 0


def test_every_block_has_a_report_and_a_hand_edit_is_caught():
    readme = (ROOT / "README.md").read_text()
    blocks = BLOCK.findall(readme)
    assert {(kind, profile) for _, kind, profile, _, _ in blocks} >= {("table", "offline"), ("facts", "offline")}
    for _, kind, name, _, _ in blocks:
        if kind == "load":
            assert json.loads((ROOT / "docs" / f"load-{name}.json").read_text())["scenario"] == name
        elif kind == "container":
            assert json.loads((ROOT / "docs" / f"container-{name}.json").read_text())["image_size_mb"] > 0
        elif kind == "plan":
            assert json.loads((ROOT / "docs" / f"plan-{name}.json").read_text())["total_minutes"] > 0
        elif kind == "cmd1":
            assert json.loads((ROOT / "docs" / f"cmd1-{name}.json").read_text())["seconds"] > 0
        else:
            assert json.loads((ROOT / "docs" / f"report-{name}.json").read_text())["profile"] == name
    table = next(body for _, kind, profile, body, _ in blocks if (kind, profile) == ("table", "offline"))
    row = next(line for line in table.splitlines() if line.startswith("| plain |"))
    edited = readme.replace(row, row.replace("| plain |", "| plain (typed) |"))
    assert regenerate(edited, ROOT / "docs") == readme


def test_pareto_front_keeps_only_undominated_points():
    from build_models.reporting.plot import pareto_front

    points = [(1.0, 0.50), (2.0, 0.60), (3.0, 0.55), (0.5, 0.40), (2.5, 0.60)]
    assert pareto_front(points) == [3, 0, 1]  # (3.0, 0.55) and (2.5, 0.60) are dominated by (2.0, 0.60)
