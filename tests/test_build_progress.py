"""The build's progress record: what /build and /health/ready say about a build running beside the server."""

from __future__ import annotations

from vitcore.build_progress import BuildProgress, progress_summary, read_progress

PHASES = [{"name": "base training", "minutes": 0.0, "basis": "done"},  # built by an earlier run
          {"name": "plain", "minutes": 2.0, "basis": "estimated"},
          {"name": "onnx", "minutes": 6.0, "basis": "estimated"},
          {"name": "latency table", "minutes": 2.0, "basis": "estimated"}]


def test_percent_and_eta_follow_the_plan_scaled_by_the_pace_of_the_finished_steps(tmp_path):
    progress = BuildProgress(tmp_path)
    progress.begin()
    progress.planned(PHASES)
    progress.step("plain")
    progress.data["steps"][1]["started"] -= 240  # plain took 4 min against its 2 planned: half the plan's pace
    progress.step_done("plain")
    progress.step("onnx")
    started = progress.data["steps"][2]["started"]
    summary = progress_summary(read_progress(tmp_path), now=started + 120)  # 2 min into onnx = 1 planned min
    assert summary["phase"] == "onnx" and summary["state"] == "running"
    assert summary["planned_minutes"] == 10.0
    assert summary["percent"] == 30.0  # (2 + 1) of 10 planned minutes
    assert summary["eta_s"] == 840  # 7 planned minutes left at twice the plan's time
    assert [s["state"] for s in summary["steps"]] == ["done", "done", "running", "queued"]


def test_a_failed_step_and_the_end_are_recorded(tmp_path):
    progress = BuildProgress(tmp_path)
    progress.planned(PHASES)
    progress.step("plain")
    progress.step_done("plain", state="failed")
    progress.finish(error="failed variants: plain")
    summary = progress_summary(read_progress(tmp_path))
    assert summary["state"] == "failed" and summary["error"] == "failed variants: plain"
    assert summary["eta_s"] is None and summary["steps"][1]["state"] == "failed"


def test_a_step_the_plan_did_not_name_is_added_and_a_missing_file_reads_as_none(tmp_path):
    assert read_progress(tmp_path) is None
    progress = BuildProgress(tmp_path)
    progress.planned(PHASES)
    progress.step("report", "not-in-the-plan")
    assert [s["name"] for s in read_progress(tmp_path)["steps"]][-1] == "report"
    assert "not-in-the-plan" not in {s["name"] for s in read_progress(tmp_path)["steps"]}


def test_a_second_build_in_the_same_folder_stops_at_once_and_names_the_first(tmp_path):
    import os

    import pytest

    from build_models.pipeline.build import BuildRequest, run_build
    from build_models.pipeline.progress import build_lock
    from build_models.profiles import get_profile
    from vitcore.errors import BuildError

    held_by_the_first_build = build_lock(tmp_path)
    message = f"another build is running in .*pid {os.getpid()}"
    with held_by_the_first_build, pytest.raises(BuildError, match=message):
        run_build(BuildRequest(profile=get_profile("smoke"), artifacts_dir=tmp_path))
    assert read_progress(tmp_path) is None  # the second wrote nothing, not even its progress
    with build_lock(tmp_path):  # released with the first
        pass
