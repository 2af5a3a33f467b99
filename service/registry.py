"""The predictors the service holds: one per manifest entry, loaded at start-up, each with a lock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitcore.backends.base import Predictor
from vitcore.catalogue import get_variant, list_variants, resolve_selection
from vitcore.errors import ArtifactIntegrityError, ManifestError, UnknownVariantError, VariantUnavailableError
from vitcore.loading import load_predictor
from vitcore.manifest import Manifest
from vitcore.threads import ThreadSettings

log = logging.getLogger(__name__)


@dataclass
class ServedVariant:
    name: str
    entry: dict[str, Any]
    predictor: Predictor | None = None
    error: str | None = None
    load_seconds: float | None = None
    runtime_missing: bool = False  # its runtime is not installed here (an image without TensorFlow, say)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def available(self) -> bool:
        return self.predictor is not None


def warm_up(predictor: Predictor) -> None:
    """One prediction at start-up, so lazy graph building (TensorFlow, OpenVINO) is not paid by a request."""
    config = predictor.preprocess_config
    predictor.predict_images([Image.new("RGB", (config.width, config.height), (128, 128, 128))])


class ServingRegistry:
    def __init__(self, manifest: Manifest, threads: ThreadSettings, startup_error: str | None = None) -> None:
        self.manifest = manifest
        self.threads = threads
        self.variants: dict[str, ServedVariant] = {}
        self.startup_error = startup_error  # set when there is no manifest to serve
        self.pending: dict[str, str] = {}  # variants a running build has not delivered yet: name -> its state

    @classmethod
    def empty(cls, artifacts_dir: Path, error: str) -> ServingRegistry:
        return cls(Manifest(root=artifacts_dir, data={"variants": {}}), ThreadSettings(), startup_error=error)

    def load(self, selection: str = "all", verify: bool = True) -> None:
        for name in self.loadable(selection):
            self.variants[name] = self.load_one(name, self.manifest.variants[name], verify)

    def loadable(self, selection: str = "all") -> list[str]:
        """Manifest entries this service is asked to serve (registered and selected), in manifest order."""
        registered, wanted = set(list_variants()), set(resolve_selection(selection))
        return [name for name in self.manifest.variants if name in registered and name in wanted]

    def load_one(self, name: str, entry: dict[str, Any], verify: bool = True) -> ServedVariant:
        """One variant loaded and warmed up; one that cannot predict comes back unavailable, with why."""
        served = ServedVariant(name=name, entry=entry, runtime_missing=bool(get_variant(name).missing_requirements()))
        started = time.perf_counter()
        try:
            predictor = load_predictor(self.manifest, name, self.threads, verify=verify)
            warm_up(predictor)
            served.predictor = predictor
            served.load_seconds = round(time.perf_counter() - started, 3)
            log.info("loaded %s in %.2fs", name, served.load_seconds)
        except VariantUnavailableError as exc:
            served.error = public_reason(exc)
            log.warning("%s unavailable: %s", name, exc.reason)
        except Exception as exc:  # noqa: BLE001 - a variant that cannot predict is unavailable, not fatal
            served.error = "warm-up failed (see the service log)"
            log.warning("%s unavailable: warm-up failed: %s: %s", name, type(exc).__name__, exc)
        return served

    def required_names(self, required: str = "all") -> list[str]:
        """'all' = every variant this installation can run: one whose runtime is not installed is listed as
        unavailable but does not hold readiness back (unless named)."""
        if required.strip() in ("", "all"):
            return [n for n, v in self.variants.items() if not v.runtime_missing]
        return [n.strip() for n in required.split(",") if n.strip()]

    def missing_required(self, required: str = "all") -> list[str]:
        """Required variants that cannot serve."""
        return [n for n in self.required_names(required) if n not in self.variants or not self.variants[n].available]

    def is_ready(self, required: str = "all") -> bool:
        return self.startup_error is None and bool(self.variants) and not self.missing_required(required)

    @property
    def degraded(self) -> dict[str, str]:
        """Variants in the manifest that failed to load, with why; the others serve."""
        return {name: v.error or "not loaded" for name, v in self.variants.items() if not v.available}

    def get(self, name: str) -> ServedVariant:
        if self.startup_error is not None:
            raise ManifestError(self.startup_error)
        served = self.variants.get(name)
        if served is None and name in self.pending:
            raise VariantUnavailableError(name, f"{self.pending[name]} in the running build (see /build)")
        if served is None:
            raise UnknownVariantError(name, sorted(self.variants))
        if served.predictor is None:
            raise VariantUnavailableError(name, served.error or "not loaded")
        return served

    def select_available(self, selection: str) -> list[str]:
        """Registry-ordered available variants for 'all' or a comma-separated list (validated)."""
        if selection.strip() in ("", "all"):
            return [n for n in list_variants() if n in self.variants and self.variants[n].available]
        names = [n.strip() for n in selection.split(",") if n.strip()]
        for name in names:
            self.get(name)
        return [n for n in list_variants() if n in names]

    def logits(self, name: str, inputs: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Logits for images and/or preprocessed CHW arrays (preprocess + forward), under the variant's lock."""
        served = self.get(name)
        assert served.predictor is not None
        with served.lock:
            return served.predictor.predict_logits(inputs)

    def describe(self) -> list[dict[str, Any]]:
        latency = self.manifest.data.get("latency", {}).get("results", {})
        out = []
        for name in list_variants():
            served = self.variants.get(name)
            if served is None:
                continue
            entry = served.entry
            out.append({
                "name": name, "runtime": entry.get("runtime"), "summary": entry.get("summary"),
                "available": served.available, "degraded": not served.available, "error": served.error,
                "size_mb": entry.get("size_mb"),
                "metrics": entry.get("metrics"), "validation": entry.get("validation"),
                "calibration": entry.get("calibration"), "build": entry.get("build"),
                "load_seconds": served.load_seconds, "latency": _latency_summary(latency.get(name)),
            })
        return out


def public_reason(exc: VariantUnavailableError) -> str:
    """A stable reason for clients; the detail (paths, exception text) stays in the service log."""
    if isinstance(exc.__cause__, ArtifactIntegrityError):
        return "artifact files do not match the manifest (see the service log)"
    for stable in ("not built", "runtime not installed"):
        if exc.reason.startswith(stable):
            return exc.reason
    if exc.reason.startswith("build failed"):
        return "build failed (see the build log)"
    return "failed to load (see the service log)"


def _latency_summary(measured: dict[str, Any] | None) -> dict[str, Any] | None:
    """The build's side-by-side latency of one variant: p50 and speedup vs plain, model and end-to-end."""
    if not measured:
        return None
    return {mode: {key: measured.get(mode, {}).get(key) for key in ("p50_ms", "speedup_vs_plain")}
            for mode in ("model", "end_to_end")}
