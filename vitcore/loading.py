"""Load a built variant from the manifest into its Predictor (used by the service, bench and report)."""

from __future__ import annotations

from vitcore.backends.base import Predictor
from vitcore.catalogue import get_variant
from vitcore.errors import VariantUnavailableError
from vitcore.manifest import Manifest
from vitcore.threads import ThreadSettings


def load_predictor(manifest: Manifest, name: str, threads: ThreadSettings, verify: bool = True) -> Predictor:
    """Check the entry, its runtime and its files, then load. Raises VariantUnavailableError."""
    spec = get_variant(name)
    entry = manifest.variants.get(name)
    if entry is None or entry.get("status") != "ok":
        reason = "not built" if entry is None else f"build failed: {entry.get('error', 'unknown error')}"
        raise VariantUnavailableError(name, reason)
    missing = spec.missing_requirements()
    if missing:
        raise VariantUnavailableError(name, f"runtime not installed: {', '.join(missing)}")
    try:
        if verify:
            manifest.verify(name)
        predictor = spec.predictor(manifest.root / name, threads)
        predictor.load()
    except Exception as exc:  # noqa: BLE001 - any load failure makes this one variant unavailable
        raise VariantUnavailableError(name, f"{type(exc).__name__}: {exc}") from exc
    return predictor


def load_predictors(manifest: Manifest, names: list[str], threads: ThreadSettings) -> dict[str, Predictor]:
    return {name: load_predictor(manifest, name, threads) for name in names}
