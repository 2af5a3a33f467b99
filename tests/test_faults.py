"""The fault-injection suite against real service processes, and start-up refusal of bad settings."""

import json
import os
import subprocess
import sys

from loadtests import faults
from tests.conftest import DATASET


def test_the_fault_suite_loses_no_accepted_request_and_gives_no_undocumented_5xx(smoke_artifacts, tmp_path):
    out = tmp_path / "faults.json"
    code = faults.main(["--artifacts", str(smoke_artifacts), "--images", str(DATASET), "--out", str(out),
                        "--logs", str(tmp_path / "logs")])
    result = json.loads(out.read_text())
    assert [s["scenario"] for s in result["scenarios"]] == list(faults.SCENARIOS)
    assert result["summary"] == {"requests": result["summary"]["requests"], "lost": 0, "unexpected_5xx": 0,
                                 "checks_failed": []}, result["summary"]
    assert code == 0
    sigterm = next(s for s in result["scenarios"] if s["scenario"] == "sigterm-under-load")
    assert sigterm["exit_code"] == 0 and sigterm["requests_before_sigterm"] > 0


def _start(settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITSERVE_")}
    env.update({"USE_TF": "0", "VITSERVE_ARTIFACTS_DIR": "/nonexistent", **settings})
    return subprocess.run([sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=120)


def test_bad_settings_stop_start_up_with_one_line_each():
    typo = _start({"VITSERVE_VARIANTS": "plain,plian"})
    assert typo.returncode == 2
    lines = [line for line in typo.stderr.splitlines() if line.startswith("invalid setting")]
    assert len(lines) == 1 and "VITSERVE_VARIANTS='plain,plian'" in lines[0] and "plian" in lines[0]
    assert "onnx" in lines[0]  # names what is allowed
    several = _start({"VITSERVE_BATCH_SIZE_OVERRIDES": '{"plain": 100, "nope": 2}', "VITSERVE_QUEUE_SIZE": "0",
                      "VITSERVE_REQUIRED_VARIANTS": "plian"})
    lines = [line for line in several.stderr.splitlines() if line.startswith("invalid setting")]
    assert several.returncode == 2 and len(lines) == 3, several.stderr
    assert any("nope" in line for line in lines) and any("QUEUE_SIZE" in line for line in lines)


def test_out_of_range_batch_sizes_are_refused_not_clamped():
    refused = _start({"VITSERVE_BATCH_SIZE_OVERRIDES": '{"plain": 100}'})
    assert refused.returncode == 2 and "between 1 and 64" in refused.stderr


def test_while_draining_new_work_gets_503_and_probes_still_answer(tmp_path):
    from tests.fake_app import fake_client, png_bytes

    with fake_client(tmp_path) as client:
        image = {"content": png_bytes(), "headers": {"content-type": "image/png"}}
        assert client.post("/predict/plain", **image).status_code == 200
        assert client.get("/health/ready").status_code == 200
        client.app.state.drain.draining = True
        refused = client.post("/predict/plain", **image)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close" and refused.json()["error"]["code"] == "draining"
        assert refused.headers["x-request-id"]  # refusals are logged under a request id too
        v2 = client.post("/v2/models/plain/infer", json={"inputs": []})
        assert v2.status_code == 503 and isinstance(v2.json()["error"], str)
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["draining"] is True
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/health/live").status_code == 200


def test_a_request_sent_just_before_sigterm_that_gets_no_answer_is_counted_lost():
    from loadtests.fault_sigterm import GRACE_S, tally_answers

    sigterm = 100.0
    answers = [(sigterm - 1.0, 200, ""), (sigterm - GRACE_S / 2, None, "RemoteProtocolError"),
               (sigterm - GRACE_S / 4, 503, ""), (sigterm + 0.1, None, "ConnectError"), (sigterm + 0.2, 503, "")]
    tally, groups = tally_answers(answers, sigterm)
    assert [len(groups[g]) for g in ("before", "window", "after")] == [1, 2, 2]
    assert tally.lost == 1 and tally.unexpected_5xx == [
        f"no answer: RemoteProtocolError for a request sent within {GRACE_S} s before SIGTERM"]
    # Refused after the signal is not lost: the listener had closed.
    assert tally.statuses == {"200": 1, "no answer": 1, "503": 2, "refused (listener closed)": 1}
