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
