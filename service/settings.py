"""Service configuration: environment variables with the VITSERVE_ prefix, validated at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vitcore.catalogue import list_variants
from vitcore.preprocessing import MAX_IMAGE_PIXELS
from vitcore.threads import ThreadSettings

# What one body of n bytes is charged on the byte budget: the body as received, the copy parsing makes (the
# joined body, the multipart part, the V2 JSON strings) and the decoded payload (base64 in V2 JSON).
BODY_COPIES = 3


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VITSERVE_", extra="ignore")

    artifacts_dir: Path = Field(Path("artifacts"), description="folder holding manifest.json")
    variants: str = Field("all", description="'all' or a comma-separated subset to load")
    required_variants: str = Field("all", description="variants that must serve for /health/ready to be 200 "
                                   "('all' = every loaded variant); the others may be degraded")
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="largest accepted request body")
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, gt=0, description="largest image (width x height) decoded")
    verify_sha256: bool = Field(True, description="check every artifact file against the manifest at start-up")
    threads: int = Field(0, ge=0, description="threads for every runtime (0 = all cores)")
    openvino_hint: str = Field("LATENCY", pattern="^(LATENCY|THROUGHPUT)$")
    openvino_streams: int = Field(0, ge=0, le=64, description="OpenVINO streams (0 = the plugin's choice for "
                                  "the hint); with more than 1, a micro-batch is split over them")
    max_batch_size: int = Field(8, ge=1, le=64, description="images one forward pass may gather (micro-batching)")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="how long a batch waits for more after its first")
    batch_size_overrides: dict[str, int] = Field(  # values 1..64, keys registered variant names
        {"dynamic-quant": 1}, description="per-variant max batch size; dynamic int8 scales activations per batch, "
        "so it runs unbatched to keep its answers independent of other requests")
    queue_size: int = Field(64, ge=1, le=100_000,
                            description="requests one variant may hold admitted; more get 503 + Retry-After")
    max_queued_bytes: int = Field(256 * 1024 * 1024, gt=0, description="bytes all admitted requests of the process "
                                  "may hold together, across every variant: each body x BODY_COPIES (taken from "
                                  "Content-Length before the body is read, or counted as a chunked body arrives) "
                                  "+ each preprocessed input, held until its forward pass ends; more get 503 + "
                                  "Retry-After")
    body_timeout_s: float = Field(30.0, gt=0, le=3600, description="time a client has to send its body; 408 past it")
    max_connections: int | None = Field(None, ge=1, description="open connections uvicorn accepts before answering "
                                        "503 (unset: no limit)")
    decode_concurrency: int = Field(4, ge=1, le=256, description="images decoded at once across the service")
    drain_seconds: float = Field(25.0, ge=0, le=3600, description="on SIGTERM: how long admitted requests may "
                                 "take to finish before the process exits")
    request_timeout_s: float = Field(30.0, gt=0,
                                     description="deadline for one prediction (queue + forward); 504 past it")
    benchmark_enabled: bool = Field(False, description="serve /benchmark (off by default: it occupies variants)")
    benchmark_token: str | None = Field(None, description="when set, /benchmark needs 'Authorization: Bearer <token>'")
    benchmark_max_calls: int = Field(20_000, gt=0, description="total work one /benchmark may do: runs x batch "
                                     "size x variants x modes")
    startup_timing_s: float = Field(20.0, ge=0, le=600, description="at start-up, after loading: seconds to time "
                                    "every served variant on this host (with these thread settings) for "
                                    "/predict/auto to route on; 0 = route on the build's figures")
    auto_variants: str = Field("all", description="variants /predict/auto (and degradation) may choose from")
    auto_max_latency_ms: float | None = Field(None, gt=0, description="/predict/auto's budget when a request "
                                              "gives none (unset: the most accurate variant, whatever its latency)")
    degrade: bool = Field(False, description="let a request that allows it (allow_degrade=true) be answered by a "
                          "cheaper variant when the one it names is saturated")
    degrade_f1_margin: float = Field(0.01, ge=0, le=1, description="how much lower a fallback's measured F1 may be")
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    build_if_missing: bool = Field(False, description="when the artifacts folder holds no finished build: "
                                   "start the build beside the server (or resume it) and serve each variant as "
                                   "it is built")
    build_profile: str | None = Field(None, description="profile to build when build_if_missing is set")
    build_args: str = Field("", description="more `python -m build_models` arguments for that build, e.g. "
                            "'--variants plain,openvino-int8 --limit 3000'")

    @field_validator("variants", "required_variants", "auto_variants")
    @classmethod
    def _known_variant_names(cls, value: str) -> str:
        unknown = [name for name in _names(value) if name not in list_variants()]
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}; use 'all' or a comma-separated subset of "
                             f"{', '.join(list_variants())}")
        return value

    @field_validator("batch_size_overrides")
    @classmethod
    def _valid_overrides(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = [name for name in value if name not in list_variants()]
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)} as override keys; known: "
                             f"{', '.join(list_variants())}")
        out_of_range = {name: size for name, size in value.items() if not 1 <= size <= 64}
        if out_of_range:
            raise ValueError(f"batch sizes must be between 1 and 64, got {out_of_range}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        if self.max_queued_bytes < BODY_COPIES * self.max_body_bytes:
            raise ValueError(f"max_queued_bytes ({self.max_queued_bytes}) must be at least {BODY_COPIES} x "
                             f"max_body_bytes ({BODY_COPIES * self.max_body_bytes}): a body is charged "
                             f"{BODY_COPIES} times its size, or a largest body could not be admitted")
        loaded = set(list_variants()) if self.variants.strip() in ("", "all") else set(_names(self.variants))
        not_loaded = [name for name in _names(self.required_variants) if name not in loaded]
        if not_loaded:
            raise ValueError(f"required_variants names {', '.join(not_loaded)}, which variants does not load")
        return self

    def batch_size_for(self, variant: str) -> int:
        return self.batch_size_overrides.get(variant, self.max_batch_size)

    def thread_settings(self) -> ThreadSettings:
        return ThreadSettings.for_every_runtime(self.threads, openvino_hint=self.openvino_hint,
                                                openvino_streams=self.openvino_streams)


def _names(selection: str) -> list[str]:
    return [] if selection.strip() in ("", "all") else [n.strip() for n in selection.split(",") if n.strip()]


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """VITSERVE_* variables that name no setting (a typo would otherwise be ignored)."""
    prefix = ServiceSettings.model_config.get("env_prefix", "")
    known = {prefix + name.upper() for name in ServiceSettings.model_fields}
    return sorted(key for key in environ if key.upper().startswith(prefix) and key.upper() not in known)


def settings_errors(error: ValidationError) -> list[str]:
    """One line per invalid setting: its variable, the value given and what is allowed."""
    prefix = ServiceSettings.model_config.get("env_prefix", "")
    lines = []
    for item in error.errors():
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        field = ".".join(str(part) for part in item.get("loc", ()))
        if not field:
            lines.append(f"invalid settings: {message}")
            continue
        lines.append(f"invalid setting {prefix}{field.upper()}={item.get('input')!r}: {message}")
    return lines
