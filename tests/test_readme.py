"""README and docs/ page figures are generated from the committed docs/ reports; a hand edit is caught."""

import json
import re
import shutil
from pathlib import Path

from build_models.reporting.readme import BLOCK, ROOT, main, pages, regenerate

README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _blocks() -> list[tuple[Path, str, str, str]]:
    """(page, kind, name, body) of every generated block of the README and the docs pages."""
    return [(page, kind, name, body) for page in pages(README, DOCS)
            for _, kind, name, body, _ in BLOCK.findall(page.read_text())]


def _prose(text: str) -> list[str]:
    """The lines of a page outside its fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(text: str) -> set[str]:
    """The ids GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in _prose(text) if line.startswith("#")}


def test_committed_readme_matches_committed_reports():
    assert main(["check"]) == 0


def test_the_pages_are_the_readme_and_the_docs_pages_but_not_the_published_reports():
    found = pages(README, DOCS)
    assert found[0] == README
    assert DOCS / "reproducing.md" in found
    assert (DOCS / "report-offline.md").exists() and DOCS / "report-offline.md" not in found


def test_every_block_has_a_report_and_a_hand_edit_is_caught():
    blocks = _blocks()
    assert {(kind, profile) for _, kind, profile, _ in blocks} >= {("table", "offline"), ("facts", "offline")}
    assert {page for page, *_ in blocks} - {README}, "the docs pages hold generated blocks too"
    for _, kind, name, _ in blocks:
        if kind == "load":
            assert json.loads((DOCS / f"load-{name}.json").read_text())["scenario"] == name
        elif kind == "container":
            assert json.loads((DOCS / f"container-{name}.json").read_text())["image_size_mb"] > 0
        elif kind == "plan":
            assert json.loads((DOCS / f"plan-{name}.json").read_text())["total_minutes"] > 0
        elif kind == "cmd1":
            assert json.loads((DOCS / f"cmd1-{name}.json").read_text())["seconds"] > 0
        elif kind == "probes":
            assert json.loads((DOCS / f"probes-{name}.json").read_text())
        elif kind == "faults":
            assert json.loads((DOCS / f"faults-{name}.json").read_text())["scenarios"]
        elif kind == "peaks":
            assert json.loads((DOCS / f"peaks-{name}.json").read_text())["peaks"]["fp32"]["gmac_per_s"] > 0
        else:
            profile = json.loads((DOCS / f"report-{name}.json").read_text())["profile"]
            assert name == profile or name.startswith(f"{profile}-")  # e.g. dinov2-avx2: a dinov2 build elsewhere
    page, table = next((page, body) for page, kind, profile, body in blocks if (kind, profile) == ("table", "offline"))
    text = page.read_text()
    row = next(line for line in table.splitlines() if line.startswith("| plain |"))
    edited = text.replace(row, row.replace("| plain |", "| plain (typed) |"))
    assert edited != text
    assert regenerate(edited, DOCS) == text


def test_check_catches_a_hand_edit_in_every_docs_page_and_write_repairs_it(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs, ignore=shutil.ignore_patterns("*.png"))
    readme = tmp_path / "README.md"
    shutil.copy2(README, readme)
    where = ["--readme", str(readme), "--docs", str(docs)]
    assert main(["check", *where]) == 0
    edited_pages = 0
    for page in pages(readme, docs)[1:]:
        text = page.read_text()
        block = BLOCK.search(text)
        if block is None:
            continue
        typed = f"{block.group(1)}typed by hand\n{block.group(4)}{block.group(5)}"
        page.write_text(text.replace(block.group(0), typed))
        assert main(["check", *where]) == 1, f"a hand edit in {page.name} went unnoticed"
        assert main(["write", *where]) == 0
        assert page.read_text() == text
        edited_pages += 1
    assert edited_pages >= 2
    page = docs / "reproducing.md"
    page.write_text(page.read_text() + "\n<!-- generated:table:offline -->\nno closing marker\n")
    assert main(["check", *where]) == 1


def test_readme_is_short_links_every_docs_page_and_no_relative_link_is_dead():
    assert len(README.read_text().splitlines()) <= 250
    all_pages = pages(README, DOCS)
    linked_from_readme = set()
    for page in all_pages:
        for target in LINK.findall("\n".join(_prose(page.read_text()))):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            assert destination.exists(), f"{page.name}: dead link {target}"
            if anchor and destination.suffix == ".md":
                assert anchor in _anchors(destination.read_text()), f"{page.name}: no heading for {target}"
            if page == README:
                linked_from_readme.add(destination)
    assert set(all_pages[1:]) <= linked_from_readme


def test_pareto_front_keeps_only_undominated_points():
    from build_models.reporting.plot import pareto_front

    points = [(1.0, 0.50), (2.0, 0.60), (3.0, 0.55), (0.5, 0.40), (2.5, 0.60)]
    assert pareto_front(points) == [3, 0, 1]  # (3.0, 0.55) and (2.5, 0.60) are dominated by (2.0, 0.60)
