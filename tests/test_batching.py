"""Micro-batching and admission control, through the real app (TestClient from several threads)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import ServiceSettings


def _metric(client, sample):
    """The value of one exposition line, e.g. 'vitserve_batch_size_count{variant="plain"}' (0 if absent)."""
    for line in client.get("/metrics").text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def _post(client, variant, jpeg):
    return client.post(f"/predict/{variant}", content=jpeg, headers={"content-type": "image/jpeg"})


@pytest.fixture(scope="module")
def jpegs(test_split_jpegs):
    return [jpeg for _, jpeg in test_split_jpegs[:8]]


def test_concurrent_requests_share_a_forward_pass_and_get_their_own_answers(smoke_artifacts, jpegs):
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain,dynamic-quant", max_batch_size=8,
                               max_wait_ms=300)
    with TestClient(create_app(settings)) as client:
        alone = [_post(client, "plain", jpeg).json()["probabilities"] for jpeg in jpegs]
        before_count = _metric(client, 'vitserve_batch_size_count{variant="plain"}')
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda j: _post(client, "plain", j), jpegs))
        assert all(r.status_code == 200 for r in together)
        for single, batched in zip(alone, together, strict=True):
            np.testing.assert_allclose(list(batched.json()["probabilities"].values()), list(single.values()),
                                       atol=1e-5)
        batches = _metric(client, 'vitserve_batch_size_count{variant="plain"}') - before_count
        assert 1 <= batches < len(jpegs)  # at least two requests shared one forward pass
        # dynamic int8 scales activations per batch: it is never batched, so answers do not depend on neighbours
        with ThreadPoolExecutor(8) as pool:
            assert all(r.status_code == 200 for r in pool.map(lambda j: _post(client, "dynamic-quant", j), jpegs))
        count = _metric(client, 'vitserve_batch_size_count{variant="dynamic-quant"}')
        assert _metric(client, 'vitserve_batch_size_sum{variant="dynamic-quant"}') == count == len(jpegs)


def _slow(client, seconds, started=None):
    """Make every variant's forward pass take ``seconds`` longer (the real pass still runs)."""
    registry = client.app.state.registry
    for batcher in client.app.state.batchers.values():
        def slow_predict(images, name=batcher.name):
            if started is not None:
                started.set()
            time.sleep(seconds)
            return registry.logits(name, images)

        batcher.run_batch = slow_predict


def test_full_queue_gets_503_with_retry_after_and_deadline_gets_504(smoke_artifacts, jpegs):
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain", max_batch_size=1, queue_size=1,
                               request_timeout_s=0.3)
    with TestClient(create_app(settings)) as client:
        normal = {name: batcher.run_batch for name, batcher in client.app.state.batchers.items()}
        _slow(client, 0.5)
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda j: _post(client, "plain", j), jpegs[:6]))
        codes = sorted(r.status_code for r in answers)
        assert 503 in codes and 504 in codes and not any(c == 500 for c in codes), codes
        full = next(r for r in answers if r.status_code == 503)
        assert full.json()["error"]["code"] == "queue_full" and full.headers["retry-after"] == "1"
        late = next(r for r in answers if r.status_code == 504)
        assert late.json()["error"]["code"] == "deadline_exceeded"
        time.sleep(1.5)  # the slow batches drain
        for name, batcher in client.app.state.batchers.items():
            batcher.run_batch = normal[name]
        assert _post(client, "plain", jpegs[0]).status_code == 200  # the same server keeps serving


def test_health_and_metrics_answer_while_the_variant_is_busy(smoke_artifacts, jpegs):
    settings = ServiceSettings(artifacts_dir=smoke_artifacts, variants="plain", max_batch_size=1)
    with TestClient(create_app(settings)) as client:
        started = threading.Event()
        _slow(client, 2.0, started)
        busy = threading.Thread(target=_post, args=(client, "plain", jpegs[0]))
        busy.start()
        assert started.wait(5)
        t0 = time.perf_counter()
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert time.perf_counter() - t0 < 1.0  # not queued behind the 2-second forward pass
        busy.join()


def test_work_for_a_client_that_left_is_dropped_before_it_runs():
    import asyncio

    from PIL import Image

    from service.batching import BatcherLimits, ClientGoneError, MicroBatcher
    from service.prometheus import ServiceMetrics

    ran: list[int] = []

    def run_batch(images):
        time.sleep(0.3)
        ran.append(len(images))
        return np.zeros((len(images), 2), dtype=np.float32)

    async def scenario():
        batcher = MicroBatcher("v", run_batch, ServiceMetrics(), BatcherLimits(1, 0, 8))
        batcher.start()
        image = Image.new("RGB", (8, 8))
        first = asyncio.create_task(batcher.submit(image, 5.0))  # occupies the worker for 0.3 s
        await asyncio.sleep(0.05)

        async def gone():
            return True

        with pytest.raises(ClientGoneError):
            await batcher.submit(image, 5.0, client_gone=gone)  # waits behind the first, then its client leaves
        await first
        await asyncio.sleep(0.4)
        await batcher.stop()

    asyncio.run(scenario())
    assert ran == [1]  # only the first request ever ran
