"""Service configuration: environment variables with the VITSERVE_ prefix, validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from build_models.preprocessing import MAX_IMAGE_PIXELS
from build_models.threads import ThreadSettings


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
    max_batch_size: int = Field(8, ge=1, le=64, description="images one forward pass may gather (micro-batching)")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="how long a batch waits for more after its first")
    batch_size_overrides: dict[str, int] = Field(
        {"dynamic-quant": 1}, description="per-variant max batch size; dynamic int8 scales activations per batch, "
        "so it runs unbatched to keep its answers independent of other requests")
    queue_size: int = Field(64, ge=1, description="requests one variant may hold waiting; more get 503 + Retry-After")
    request_timeout_s: float = Field(30.0, gt=0,
                                     description="deadline for one prediction (queue + forward); 504 past it")
    benchmark_enabled: bool = Field(False, description="serve /benchmark (off by default: it occupies variants)")
    benchmark_token: str | None = Field(None, description="when set, /benchmark needs 'Authorization: Bearer <token>'")
    benchmark_max_calls: int = Field(20_000, gt=0, description="total work one /benchmark may do: runs x batch "
                                     "size x variants x modes")
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    build_if_missing: bool = Field(False, description="build the default profile when no manifest exists")
    build_profile: str | None = Field(None, description="profile to build when build_if_missing is set")

    def batch_size_for(self, variant: str) -> int:
        return max(1, min(self.batch_size_overrides.get(variant, self.max_batch_size), 64))

    def thread_settings(self) -> ThreadSettings:
        return ThreadSettings(torch_intra_op=self.threads, ort_intra_op=self.threads,
                              openvino_threads=self.threads, openvino_hint=self.openvino_hint,
                              tf_intra_op=self.threads)
