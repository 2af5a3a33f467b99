"""The Open Inference Protocol V2 (KServe / Triton REST): every served variant is a model named after it.

Inputs: ``IMAGE`` (BYTES [N], encoded images) or ``PIXELS`` (FP32 [N,3,H,W], the shared
preprocessing's output). Outputs: ``LOGITS`` and ``PROBABILITIES`` (FP32 [N, classes]), either
of them as ``"score:index:label"`` strings with ``parameters.classification``. Requests go through
the same micro-batcher, admission control and metrics as /predict. Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from PIL import Image

from service.dependencies import get_registry, get_settings
from service.http_errors import v2_error_response
from service.inputs import input_bytes, prepare_payloads, read_within
from service.readiness import is_ready
from service.registry import ServedVariant, ServingRegistry
from service.responses import DRAINING, V2ErrorBody, error_responses
from service.settings import ServiceSettings
from service.v2_codec import (
    HEADER_LENGTH,
    IMAGE_INPUT,
    OUTPUTS,
    PIXELS_INPUT,
    InferenceRequest,
    InferenceRequestError,
    encode_infer_response,
    parse_infer_request,
)
from service.v2_routed import ROUTED_MODELS, infer_routed, routed_ready
from vitcore.errors import UnknownVariantError
from vitcore.preprocessing import softmax

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])
MODEL_VERSION = "1"

DRAINING_RESPONSES = error_responses(DRAINING, V2ErrorBody)
MODEL_ERRORS = {
    404: "unknown model, or a version other than 1",
    503: "the model is built but could not be loaded, there is no manifest, or the service is draining",
}
MODEL_RESPONSES = error_responses(MODEL_ERRORS, V2ErrorBody)
INFER_RESPONSES = error_responses({
    **MODEL_ERRORS,
    400: "a request that does not follow the protocol or the model's inputs, or an undecodable image",
    408: "the body did not arrive within the configured time",
    413: "body over the configured limit, or an image over the pixel limit",
    415: "an image in a format that is not accepted",
    499: "the client disconnected before the answer; its work was dropped",
    503: "the model could not be loaded, there is no manifest, its queue is full or the service is draining "
         "(see Retry-After)",
    504: "no answer within the request deadline",
}, V2ErrorBody)
_PARAMETERS = {"type": "object"}
_INPUT = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    "name": {"enum": [IMAGE_INPUT, PIXELS_INPUT]}, "datatype": {"enum": ["BYTES", "FP32"]},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}}, "data": {"type": "array"},
    "parameters": _PARAMETERS}}
_OUTPUT = {"type": "object", "required": ["name"], "properties": {
    "name": {"enum": list(OUTPUTS)}, "parameters": _PARAMETERS}}
_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": _INPUT},
    "outputs": {"type": "array", "items": _OUTPUT}, "parameters": _PARAMETERS}}
INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _REQUEST},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},  # the binary data extension
}}}


def _server_version() -> str:
    try:
        return version("vitserve")
    except PackageNotFoundError:
        return "unknown"


async def _v2_answer(call: Callable[[], Awaitable[Response]]) -> Response:
    """The answer, or its error in the V2 shape (the first one, when a TaskGroup wrapped them in a group)."""
    error: BaseException
    try:
        return await call()
    except* Exception as group:  # unplanned ones become a logged 500 without internals
        error = group
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
    assert isinstance(error, Exception)
    return v2_error_response(error)


def _served(registry: ServingRegistry, model: str, model_version: str | None) -> ServedVariant:
    if model_version not in (None, MODEL_VERSION):
        raise UnknownVariantError(f"{model} version {model_version}", [f"{model} version {MODEL_VERSION}"])
    return registry.get(model)


def _labels(registry: ServingRegistry, classes: int) -> list[str]:
    return list(registry.manifest.data.get("label_names") or [str(i) for i in range(classes)])


@router.get("", responses=DRAINING_RESPONSES)
async def server_metadata() -> dict[str, Any]:
    return {"name": "vitserve", "version": _server_version(), "extensions": ["binary_tensor_data", "classification"]}


@router.get("/health/live", responses=DRAINING_RESPONSES)
async def server_live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", responses={503: {"description": "not ready: a required model is not serving, or "
                                                              "the service is draining"}})
async def server_ready(request: Request, registry: ServingRegistry = Depends(get_registry),
                       settings: ServiceSettings = Depends(get_settings)) -> JSONResponse:
    ready = is_ready(request, registry, settings.required_variants)
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@router.get("/models/{model}", responses=MODEL_RESPONSES)
@router.get("/models/{model}/versions/{model_version}", responses=MODEL_RESPONSES)
async def model_metadata(model: str, request: Request, model_version: str | None = None,
                         registry: ServingRegistry = Depends(get_registry)) -> Response:
    async def metadata() -> Response:
        if model in ROUTED_MODELS and model_version in (None, MODEL_VERSION):
            routed_ready(request, registry, model)
            return JSONResponse({"name": model, "versions": [MODEL_VERSION], "platform": "vitserve-router",
                                 "inputs": [{"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}],
                                 "outputs": [{"name": name, "datatype": "FP32",
                                              "shape": [-1, len(_labels(registry, 2))]} for name in OUTPUTS]})
        served = _served(registry, model, model_version)
        assert served.predictor is not None
        config, classes = served.predictor.preprocess_config, len(_labels(registry, 2))
        return JSONResponse({
            "name": model, "versions": [MODEL_VERSION], "platform": served.entry.get("runtime", "unknown"),
            "inputs": [{"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]},
                       {"name": PIXELS_INPUT, "datatype": "FP32", "shape": [-1, 3, config.height, config.width]}],
            "outputs": [{"name": name, "datatype": "FP32", "shape": [-1, classes]} for name in OUTPUTS],
        })
    return await _v2_answer(metadata)


@router.get("/models/{model}/ready", responses=MODEL_RESPONSES)
@router.get("/models/{model}/versions/{model_version}/ready", responses=MODEL_RESPONSES)
async def model_ready(model: str, request: Request, model_version: str | None = None,
                      registry: ServingRegistry = Depends(get_registry)) -> Response:
    async def ready() -> Response:
        if model in ROUTED_MODELS and model_version in (None, MODEL_VERSION):
            routed_ready(request, registry, model)
        else:
            _served(registry, model, model_version)
        return JSONResponse({"name": model, "ready": True})
    return await _v2_answer(ready)


async def _model_inputs(request: Request, served: ServedVariant,
                        parsed: InferenceRequest) -> list[Image.Image | np.ndarray]:
    assert served.predictor is not None
    if parsed.pixels is not None:
        config = served.predictor.preprocess_config
        expected = (3, config.height, config.width)
        if parsed.pixels.ndim != 4 or parsed.pixels.shape[1:] != expected:
            raise InferenceRequestError(f"input {PIXELS_INPUT!r} must have shape [N,{','.join(map(str, expected))}] "
                                        f"for {served.name!r}, got {list(parsed.pixels.shape)}")
        return list(parsed.pixels)
    assert served.predictor is not None
    return await prepare_payloads(request, served.predictor, parsed.images)


async def _infer(model: str, model_version: str | None, request: Request, registry: ServingRegistry,
                 settings: ServiceSettings) -> Response:
    served = _served(registry, model, model_version)
    raw = await read_within(request.body(), settings.body_timeout_s)
    parsed = await run_in_threadpool(parse_infer_request, raw, request.headers.get(HEADER_LENGTH))
    count = len(parsed.pixels) if parsed.pixels is not None else len(parsed.images)
    if not 1 <= count <= settings.queue_size:
        raise InferenceRequestError(f"send between 1 and {settings.queue_size} inputs in one request, got {count}")
    assert served.predictor is not None
    batcher = request.app.state.batchers[model]
    with batcher.reserve(count, count * input_bytes(served.predictor)) as hold:  # 503 before decoding
        inputs = await _model_inputs(request, served, parsed)
        del raw
        async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
            tasks = [group.create_task(batcher.submit(item, settings.request_timeout_s, request.is_disconnected,
                                                      hold)) for item in inputs]
    logits = np.stack([task.result()[0] for task in tasks]).astype(np.float32)
    body, headers = encode_infer_response(model, parsed, logits, softmax(logits), _labels(registry, logits.shape[1]))
    return Response(content=body, headers=headers, media_type=headers["content-type"])


@router.post("/models/{model}/infer", responses=INFER_RESPONSES, openapi_extra=INFER_BODY)
@router.post("/models/{model}/versions/{model_version}/infer", responses=INFER_RESPONSES, openapi_extra=INFER_BODY)
async def infer(model: str, request: Request, model_version: str | None = None,
                registry: ServingRegistry = Depends(get_registry),
                settings: ServiceSettings = Depends(get_settings)) -> Response:
    started = time.perf_counter()
    if model in ROUTED_MODELS and model_version in (None, MODEL_VERSION):
        response = await _v2_answer(lambda: infer_routed(model, request, registry, settings))
    else:
        response = await _v2_answer(lambda: _infer(model, model_version, request, registry, settings))
    request.app.state.metrics.record_request(model, model in registry.variants or model in ROUTED_MODELS,
                                             response.status_code, started)
    return response
