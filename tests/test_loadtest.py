"""A short, bounded Locust run against the smoke artifacts on 127.0.0.1: zero failures."""

import json

from loadtests.run import main
from tests.conftest import DATASET


def test_locust_headless_run_has_no_failures(smoke_artifacts, tmp_path, capsys):
    out = tmp_path / "reports"
    code = main(["--artifacts", str(smoke_artifacts), "--variants", "plain:2,onnx:1", "--users", "3",
                 "--spawn-rate", "3", "--run-time", "15s", "--images", str(DATASET), "--out", str(out),
                 "--timeout", "120", "--ready-timeout", "120"])
    printed = capsys.readouterr().out
    rows = {row["name"]: row for row in json.loads((out / "summary.json").read_text())}
    assert code == 0, printed
    assert rows["Aggregated"]["requests"] > 10 and rows["Aggregated"]["failures"] == 0
    assert {"/predict/plain", "/predict/onnx"} <= set(rows)
    assert (out / "locust.html").stat().st_size > 0 and (out / "locust_stats.csv").exists()
    assert "/predict/plain" in printed


def test_bad_inputs_scenario_gets_only_4xx_for_bad_requests(smoke_artifacts, tmp_path, capsys):
    from loadtests.scenarios import main as scenario

    code = scenario(["bad-inputs", "--artifacts", str(smoke_artifacts), "--variants", "plain,onnx", "--users", "3",
                     "--run-time", "10s", "--images", str(DATASET), "--out", str(tmp_path), "--bad-ratio", "0.5",
                     "--timeout", "120", "--ready-timeout", "120"])
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "bad-inputs" / "summary.json").read_text())
    rows = {row["name"]: row for row in summary["rows"]}
    assert code == 0, printed
    assert any(name.startswith("bad input:") for name in rows) and rows["/predict/plain"]["requests"] > 0
    assert rows["Aggregated"]["failures"] == 0 and "0 5xx" in printed
    assert summary["health_live_ms"]["count"] > 5


def test_saturation_scenario_compares_batching_off_and_on(smoke_artifacts, tmp_path, capsys):
    from loadtests.scenarios import main as scenario

    code = scenario(["saturation", "--artifacts", str(smoke_artifacts), "--variants", "plain", "--users", "8",
                     "--run-time", "8s", "--images", str(DATASET), "--out", str(tmp_path), "--timeout", "120",
                     "--ready-timeout", "120"])
    printed = capsys.readouterr().out
    assert code == 0
    for batch in (1, 8):
        summary = json.loads((tmp_path / f"saturation-batch{batch}" / "summary.json").read_text())
        assert summary["service_env"]["VITSERVE_MAX_BATCH_SIZE"] == str(batch)
        assert {r["name"]: r for r in summary["rows"]}["Aggregated"]["failures"] == 0
    assert "/predict/plain" in printed and "5xx: 0" in printed


def test_degrade_counts_answered_and_answered_by_from_the_same_answers():
    from loadtests.answers import AnswerCount, answered_figures

    count = AnswerCount()
    outcomes = [(200, {"label": "cat", "variant": "lite0-int8"}), (200, {"label": "dog", "variant": "lite0-int8"}),
                (200, {"label": "dog"}), (503, None), (503, None), (500, None), (200, {"variant": "plain"}),
                (200, None)]
    failures = [count.record(status, body, "distilled-lite0", now=float(i)) for i, (status, body) in
                enumerate(outcomes)]
    assert failures == [None, None, None, "HTTP 503", "HTTP 503", "HTTP 500", "no label in the answer",
                        "no label in the answer"]
    figures = answered_figures(count.as_dict())
    # A 200 without a label is not an answer: it is neither answered nor answered by anyone.
    assert figures["answered by"] == {"lite0-int8": 2, "distilled-lite0": 1}
    assert figures["answered"] == 3 == sum(figures["answered by"].values())
    assert (figures["refused (503)"], figures["5xx"]) == (2, 3)
    assert figures["answered req/s"] == round(3 / 7.0, 1)  # first answer at 0 s, last at 7 s
