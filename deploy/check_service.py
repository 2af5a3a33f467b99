"""Checks a running vitserve (a container, usually) from outside, as a client would.

    python -m deploy.check_service wait  --url http://127.0.0.1:18000
    python -m deploy.check_service check --url http://127.0.0.1:18000 --host-url http://127.0.0.1:18001 \
        --dataset ../shared/datasets/cats_vs_dogs --artifacts .container/smoke-artifacts --result out.json
    python -m deploy.check_service bare  --url http://127.0.0.1:18002

``check``: readiness, /predict on test-split photos (answers equal to the host service's on the
same artifacts), /metrics, a V2 inference with tritonclient (equal to /predict), and latency:
/predict on the container vs the host, and the V2 round trip vs /predict, each pair timed in
alternating order in the same rounds. Exits non-zero on any failed check.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} was not ready within {timeout_s:.0f} s")


def test_photos(dataset: str, artifacts: Path, count: int) -> list[bytes]:
    from build_models.sources.dataset import load_labelled_images

    images = load_labelled_images(dataset)
    ids = json.loads((artifacts / "split.json").read_text())["test"][:count]
    return [images.image_bytes(int(image_id.split(":")[0])) for image_id in ids]


def predict(client: httpx.Client, url: str, jpeg: bytes, variant: str = "plain") -> list[float]:
    response = client.post(f"{url}/predict/{variant}", files={"file": ("photo.jpg", jpeg, "image/jpeg")})
    if response.status_code != 200:
        raise SystemExit(f"{url}/predict/{variant}: {response.status_code} {response.text}")
    return list(response.json()["probabilities"].values())


def v2_probabilities(triton_url: str, jpegs: list[bytes], variant: str = "plain") -> np.ndarray:
    import tritonclient.http as triton

    with triton.InferenceServerClient(triton_url) as client:
        tensor = triton.InferInput("IMAGE", [len(jpegs)], "BYTES")
        tensor.set_data_from_numpy(np.array(jpegs, dtype=np.object_))
        result = client.infer(variant, [tensor], outputs=[triton.InferRequestedOutput("PROBABILITIES")])
    return np.asarray(result.as_numpy("PROBABILITIES"))


def paired_p50_ms(first: Any, second: Any, rounds: int) -> tuple[float, float]:
    """Median latency of two calls timed in the same rounds, alternating which goes first."""
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        order = ((0, first), (1, second)) if r % 2 == 0 else ((1, second), (0, first))
        for slot, call in order:
            started = time.perf_counter()
            call()
            times[slot].append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times[0]), 2), round(statistics.median(times[1]), 2)


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check(args: argparse.Namespace) -> dict[str, Any]:
    import tritonclient.http as triton

    result: dict[str, Any] = {key: _number(value) for key, value in (fact.split("=", 1) for fact in args.facts)}
    ready = httpx.get(f"{args.url}/health/ready", timeout=10).json()
    assert ready["ready"], ready
    result["variants_loaded"] = sorted(n for n, s in ready["variants"].items() if s == "loaded")
    result["variants_degraded"] = ready["degraded"]
    photos = test_photos(args.dataset, Path(args.artifacts), args.photos)
    with httpx.Client(timeout=60) as client:
        ours = np.array([predict(client, args.url, jpeg) for jpeg in photos])
        host = np.array([predict(client, args.host_url, jpeg) for jpeg in photos])
        assert np.allclose(ours, host, atol=1e-5), "the container and the host disagree on the same artifacts"
        result["predict_checked_photos"] = len(photos)
        metrics = client.get(f"{args.url}/metrics").text
        assert re.search(r'^vitserve_requests_total\{(?=[^}]*status="200")(?=[^}]*variant="plain")[^}]*\} [1-9]',
                         metrics, re.M), "no request counter for plain in /metrics"
        v2 = v2_probabilities(args.url.removeprefix("http://"), photos[:4])
        assert np.allclose(v2, ours[:4], atol=1e-5), "V2 answers differ from /predict"
        result["v2_checked_photos"] = 4
        jpeg = photos[0]
        result["predict_p50_ms_container"], result["predict_p50_ms_host"] = paired_p50_ms(
            lambda: predict(client, args.url, jpeg), lambda: predict(client, args.host_url, jpeg), args.rounds)
        with triton.InferenceServerClient(args.url.removeprefix("http://")) as v2_client:
            tensor = triton.InferInput("IMAGE", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([jpeg], dtype=np.object_))
            result["v2_p50_ms_container"], _ = paired_p50_ms(
                lambda: v2_client.infer("plain", [tensor]), lambda: predict(client, args.url, jpeg), args.rounds)
    result["latency_rounds"] = args.rounds
    result["container_over_host"] = round(result["predict_p50_ms_container"] / result["predict_p50_ms_host"], 3)
    return result


def bare(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{args.url}/health/ready", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        raise SystemExit(f"{args.url} never answered")
    body = response.json()
    assert response.status_code == 503 and not body["ready"] and "error" in body, body
    print(f"/health/ready without artifacts: {response.status_code} {body['error']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.check_service", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("wait", "check", "bare"))
    p.add_argument("--url", required=True)
    p.add_argument("--host-url")
    p.add_argument("--dataset")
    p.add_argument("--artifacts")
    p.add_argument("--result")
    p.add_argument("--photos", type=int, default=20)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--facts", nargs="*", default=[], help="key=value pairs measured by the caller")
    args = p.parse_args(argv)
    if args.command == "wait":
        wait_ready(args.url, args.timeout)
    elif args.command == "bare":
        bare(args)
    else:
        result = check(args)
        Path(args.result).write_text(json.dumps(result, indent=2) + "\n")
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
