"""``python -m service --build-if-missing`` as a user runs it: the server answers at once, serves each variant as
soon as the build beside it has built it, reports the build's progress, and resumes a build killed halfway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.run import HOST, free_port
from tests.browser import chromium_paths, make_driver, synthetic_picture
from tests.conftest import DATASET

# distilled-lite0 comes last and trains a student for 3 epochs (about 20 s here): the build keeps running a while
# after plain is served, long enough to look at the service before it ends.
VARIANTS = ("plain", "dynamic-quant", "onnx", "onnx-int8", "openvino", "distilled-lite0")
BUILD_ARGS = (f"--limit 400 --train-epochs 3 --option lite0_epochs=3 --variants {','.join(VARIANTS)} "
              f"--dataset {DATASET}")
PENDING = ("queued", "building", "loading")


def start_service(artifacts: Path, log_file: Path, build_args: str = BUILD_ARGS) -> tuple[subprocess.Popen, str]:
    """The service in its own session, so a test can kill it and its build together."""
    port = free_port()
    env = {**os.environ, "VITSERVE_ARTIFACTS_DIR": str(artifacts), "VITSERVE_HOST": HOST, "VITSERVE_PORT": str(port),
           "VITSERVE_BUILD_PROFILE": "smoke", "VITSERVE_BUILD_ARGS": build_args, "USE_TF": "0"}
    with open(log_file, "ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "service", "--build-if-missing"], env=env,
                                   stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    return process, f"http://{HOST}:{port}"


def poll(url: str, path: str, until: Any, timeout_s: float, process: subprocess.Popen) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the service exited with {process.returncode}"
        try:
            response = httpx.get(url + path, timeout=10)
            if until(response):
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{path}: not reached within {timeout_s:g} s")


def states(response: httpx.Response) -> dict[str, str]:
    return {row["name"]: row["state"] for row in response.json()["variants"]}


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def page_shows_the_build_and_answers_with_what_is_served(url: str, tmp_path: Path) -> None:
    """The page at /, while the build runs: its progress line and plan, and a photo answered by plain."""
    if chromium_paths() is None:
        return  # the page tests say what to install; the HTTP checks above stand without a browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = make_driver()
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.ID, "build").is_displayed()
                   and d.find_element(By.ID, "build-line").text.startswith("running"))
        steps = {row.get_attribute("data-step") for row in driver.find_elements(By.CSS_SELECTOR, "#build-steps tr")}
        assert set(VARIANTS) <= steps, steps
        wait.until(lambda d: "loaded" in d.find_element(By.CSS_SELECTOR, '#study tr[data-variant="plain"]').text)
        driver.find_element(By.ID, "photo").send_keys(str(synthetic_picture(tmp_path / "picture.jpg")))
        answer = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#answers tr[data-variant="plain"]'))
        wait.until(lambda d: answer.get_attribute("data-state") == "done")
        assert answer.find_elements(By.TAG_NAME, "td")[1].text in ("cat", "dog")
    finally:
        driver.quit()


def test_variants_are_served_while_the_build_runs_and_a_killed_build_resumes(tmp_path, dataset):
    artifacts, log_file = tmp_path / "artifacts", tmp_path / "service.log"
    photo = dataset.image_bytes(int(dataset.labels.argmax()))
    started = time.monotonic()
    service, url = start_service(artifacts, log_file)
    try:
        poll(url, "/health/live", lambda r: r.status_code == 200, 60, service)
        live_after_s = time.monotonic() - started
        ready = httpx.get(url + "/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["build"]["state"] == "running", ready.text
        assert {"phase", "percent", "eta_s", "steps"} <= set(ready.json()["build"])
        assert not (artifacts / "manifest.json").exists(), "the server must answer before the base model is built"

        first = poll(url, "/variants", lambda r: states(r).get("plain") == "served", 600, service)
        waiting = [name for name, state in states(first).items() if state in PENDING]
        assert first.json()["build"]["state"] == "running" and waiting, first.text
        answer = httpx.post(url + "/predict/plain", files={"file": ("cat.jpg", photo, "image/jpeg")}, timeout=60)
        assert answer.status_code == 200 and answer.json()["label"] in ("cat", "dog"), answer.text
        not_yet = httpx.post(url + f"/predict/{waiting[-1]}", files={"file": ("cat.jpg", photo, "image/jpeg")},
                             timeout=60)
        assert not_yet.status_code == 503 and "running build" in not_yet.text, not_yet.text
        page_shows_the_build_and_answers_with_what_is_served(url, tmp_path)
        os.kill(first.json()["build"]["pid"], signal.SIGKILL)  # the build dies halfway; the server lives on
        failed = poll(url, "/build", lambda r: r.json()["state"] == "failed", 60, service).json()
        assert failed["exit_code"] == -signal.SIGKILL and "exited with code" in failed["error"], failed
        still = httpx.post(url + "/predict/plain", files={"file": ("cat.jpg", photo, "image/jpeg")}, timeout=60)
        assert still.status_code == 200, still.text
    finally:
        os.killpg(service.pid, signal.SIGKILL)
        service.wait(timeout=60)
    halfway = json.loads((artifacts / "manifest.json").read_text())
    assert halfway["variants"]["plain"]["status"] == "ok" and not halfway.get("build_history")
    assert len(halfway["variants"]) < len(VARIANTS), "killed after the build ended: nothing left to resume"

    service, url = start_service(artifacts, log_file)
    try:
        poll(url, "/variants", lambda r: states(r).get("plain") == "served", 120, service)  # before the rest
        done = poll(url, "/health/ready", lambda r: r.status_code == 200, 600, service).json()
        assert done["build"]["state"] == "done" and set(done["variants"]) == set(VARIANTS), done
        assert all(state == "loaded" for state in done["variants"].values()), done
        final = json.loads((artifacts / "manifest.json").read_text())
        assert final["variants"]["plain"]["files"] == halfway["variants"]["plain"]["files"]
        assert final["variants"]["plain"]["build_seconds"] == halfway["variants"]["plain"]["build_seconds"]
        assert "plain: already built, skipping" in log_file.read_text(errors="replace")
    finally:
        stop(service)
    assert live_after_s < 60


@pytest.mark.parametrize("build_args", ["--variants no-such-variant"])
def test_a_build_that_fails_is_reported_and_the_server_keeps_answering(tmp_path, build_args):
    service, url = start_service(tmp_path / "artifacts", tmp_path / "service.log", build_args)
    try:
        failed = poll(url, "/build", lambda r: r.json()["state"] == "failed", 120, service).json()
        assert failed["exit_code"] not in (0, None) and failed["error"], failed
        ready = httpx.get(url + "/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["build"]["state"] == "failed"
        assert httpx.get(url + "/health/live", timeout=10).status_code == 200
        unknown = httpx.post(url + "/predict/plain", files={"file": ("x.jpg", b"x", "image/jpeg")}, timeout=10)
        assert unknown.status_code == 404, unknown.text
    finally:
        stop(service)
