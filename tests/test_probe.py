"""`python -m build_models.probe`: a recipe trained for exactly N steps on the build caches, recorded, rendered."""

import json

import pytest

from build_models import probe
from build_models.profiles import get_profile
from build_models.reporting.readme import render_probes
from tests.conftest import DATASET


def test_overrides_are_typed_and_checked():
    assert probe.parse_overrides(["lr=1e-3", "low_res_size=16", "precision=bf16", "minutes=null"]) == {
        "lr": 1e-3, "low_res_size": 16, "precision": "bf16", "minutes": None}
    with pytest.raises(SystemExit, match="TrainConfig field"):
        probe.parse_overrides(["learning_rate=1e-3"])
    with pytest.raises(SystemExit):
        probe.parse_overrides(["lr"])


def test_probe_config_budgets_exact_steps_and_keeps_the_profile_recipe():
    profile = get_profile("offline")
    config = probe.probe_config(profile, 1400, 287, {"low_res_fraction": 0.6})
    assert config.epochs * 287 == pytest.approx(1400) and config.minutes is None
    assert config.eval_every_steps == 1400 and config.low_res_fraction == 0.6
    assert (config.lr, config.feature_weight, config.batch_size) == (profile.train.lr, 4.0, 64)


def test_probe_trains_on_the_build_caches_and_records_one_row_per_label(smoke_artifacts, tmp_path):
    profile = get_profile("smoke").with_overrides(dataset=str(DATASET))
    out = tmp_path / "probes.json"
    first = probe.run_probe(profile, smoke_artifacts, 12, {"lr": 1e-3}, "lower lr")
    probe.record(out, first)
    assert first["steps"] == 12 and first["precision"] == "fp32" and first["overrides"] == {"lr": 1e-3}
    again = probe.run_probe(profile, smoke_artifacts, 12, {"lr": 1e-3}, "lower lr")  # finished: resumes at the end
    assert again["val_accuracy"] == first["val_accuracy"] and again["this_invocation_minutes"] < 0.5
    probe.record(out, again)
    other = probe.run_probe(profile, smoke_artifacts, 12, {"lr": 3e-3}, "profile lr")
    probe.record(out, other)
    entries = json.loads(out.read_text())
    assert [e["label"] for e in entries] == ["lower lr", "profile lr"]
    table = render_probes(entries).splitlines()
    assert first["recipe"] == {"precision": "fp32", "low_res_fraction": 0.0, "lr": 1e-3, "distill_alpha": 0.5,
                               "feature_weight": 1.0, "pooled_weight": 0.0, "tap_weight": 0.0, "tap_layer": 3}
    assert table[2].startswith("| lower lr | 0.5 | 1 | - | 0 | 0% | 0.001 | fp32 | 12 | ") and len(table) == 4
