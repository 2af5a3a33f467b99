"""The OpenAPI document declares every status code each route can answer, checked two ways: against the error
mapping (service/errors.py STATUS_BY_ERROR) route by route, and by schemathesis calling every operation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks

from service.http_errors import (
    STATUS_BY_ERROR,
    BenchmarkBusyError,
    BenchmarkForbiddenError,
    BenchmarkTooLargeError,
    BenchmarkUnauthorizedError,
    UnsupportedMediaTypeError,
)
from tests.fake_app import VARIANT, fake_app
from vitcore.errors import ManifestError, UnknownVariantError, VariantUnavailableError, VitserveError

BODY_TOO_LARGE, UNPARSABLE_BODY, VALIDATION, DRAINING = 413, 400, 422, 503
LOOKUP = (UnknownVariantError, VariantUnavailableError, ManifestError)
BENCHMARK = (BenchmarkBusyError, BenchmarkForbiddenError, BenchmarkTooLargeError, BenchmarkUnauthorizedError)
INFERENCE = tuple(error for error, _, _ in STATUS_BY_ERROR if error is not VitserveError and error not in BENCHMARK)


def status_for(error: type[Exception]) -> int:
    return next(status for mapped, status, _ in STATUS_BY_ERROR if issubclass(error, mapped))


def statuses(*errors: type[Exception], extra: tuple[int, ...] = ()) -> set[int]:
    return {status_for(error) for error in errors} | set(extra)


V2_MODEL = statuses(*LOOKUP, extra=(DRAINING,))
EXPECTED: dict[tuple[str, str], set[int]] = {
    ("post", "/predict/{variant}"): statuses(*INFERENCE, extra=(BODY_TOO_LARGE, DRAINING)),
    ("post", "/predict/auto"): statuses(*INFERENCE, extra=(BODY_TOO_LARGE, DRAINING)),
    ("post", "/predict/cascade"): statuses(*INFERENCE, extra=(BODY_TOO_LARGE, DRAINING)),
    ("post", "/v2/models/{model}/infer"): statuses(
        *(error for error in INFERENCE if error is not UnsupportedMediaTypeError), extra=(BODY_TOO_LARGE, DRAINING)),
    ("get", "/v2/models/{model}"): V2_MODEL,
    ("get", "/v2/models/{model}/ready"): V2_MODEL,
    ("get", "/benchmark"): statuses(*BENCHMARK, *LOOKUP, extra=(VALIDATION, DRAINING)),
    ("post", "/benchmark"): statuses(*BENCHMARK, *LOOKUP,
                                     extra=(VALIDATION, UNPARSABLE_BODY, BODY_TOO_LARGE, DRAINING)),
    ("get", "/health/live"): set(),
    ("get", "/health/ready"): {503},
    ("get", "/metrics"): set(),
    ("get", "/metrics/summary"): {DRAINING},
    ("get", "/variants"): {DRAINING},
    ("get", "/build"): {DRAINING},
    ("get", "/v2"): {DRAINING},
    ("get", "/v2/health/live"): {DRAINING},
    ("get", "/v2/health/ready"): {503},
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """Routed (two variants with measured figures), so /predict/auto answers rather than 503 routing_unavailable,
    which schemathesis's server-error check would count against any route."""
    with fake_app(tmp_path_factory.mktemp("openapi"), routed=True, benchmark_enabled=True,
                  benchmark_max_calls=20) as application:
        yield application


def _declared(app: FastAPI) -> dict[tuple[str, str], set[int]]:
    return {(method, path): {int(code) for code in operation["responses"]}
            for path, operations in app.openapi()["paths"].items() for method, operation in operations.items()}


def _route(method: str, path: str) -> tuple[str, str]:
    return method, path.replace("/versions/{model_version}", "")


def test_every_route_declares_the_statuses_its_errors_map_to(app):
    declared = _declared(app)
    assert {_route(*key) for key in declared} == set(EXPECTED), "a route was added or removed: list its statuses"
    missing = {key: sorted(EXPECTED[_route(*key)] - codes) for key, codes in declared.items()
               if EXPECTED[_route(*key)] - codes}
    assert not missing, f"routes that do not declare statuses they can answer: {missing}"


SERVED = {"model": VARIANT, "variant": VARIANT, "model_version": "1"}


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("served", [False, True], ids=["any-path", "served-variant"])
def test_schemathesis_finds_no_undocumented_status(app, mode, served):
    """The checks of ``schemathesis run --checks all`` but positive_data_acceptance: a request that fits the schema
    may still be refused (an undecodable image, a benchmark over the work limit)."""
    load_all_checks()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    strategy = schema.as_strategy(schemathesis.GenerationMode(mode), path_parameters=SERVED if served else None)
    checks = [check for check in CHECKS.get_all() if getattr(check, "__name__", "") != "positive_data_acceptance"]
    failures: list[str] = []

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def call(case: Any) -> None:
        try:
            case.call_and_validate(checks=checks)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{case.method} {case.path}: {str(exc)[:600]}")

    call()
    assert not failures, "\n".join(sorted(set(failures))[:20])
