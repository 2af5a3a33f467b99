"""The study's two routed rows, ``auto`` and ``cascade``, beside the variants on /variants and the page.

``auto`` is the variant /predict/auto answers with on an idle service and no constraints (the router's own
choice, on the figures it routes on); ``cascade`` is the build's pair as measured on the test split, its mean
latency computed from the pair's measured end-to-end means and its escalation rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.routing import (
    Constraints,
    ImpossibleConstraintError,
    RoutingUnavailableError,
    VariantFigures,
    choose_variant,
)
from vitcore.manifest import selection_basis


def auto_row(manifest: Mapping[str, Any], figures: Mapping[str, VariantFigures]) -> dict[str, Any] | None:
    try:
        choice = choose_variant(figures, {}, Constraints())
    except (ImpossibleConstraintError, RoutingUnavailableError):  # nothing to route on: no auto row
        return None
    metrics = manifest.get("variants", {}).get(choice.variant, {}).get("metrics") or {}
    return {"route": "auto", "answers": choice.variant, "available": True, "f1": choice.f1,
            "f1_ci95": metrics.get("f1_ci95"), "mean_ms": figures[choice.variant].e2e_ms,
            "size_mb": _size_mb(manifest, [choice.variant]), "chosen_on_f1": choice.chosen_on,
            "how": f"no constraints: the most accurate variant by {selection_basis(manifest)}, ties to the faster; "
                   "its F1 is the test split's"}


def cascade_row(manifest: Mapping[str, Any], serving: set[str]) -> dict[str, Any] | None:
    cascade = manifest.get("cascade") or {}
    test = cascade.get("test")
    if not test:
        return None
    return {"route": "cascade", "answers": f"{cascade['first']} → {cascade['then']}",
            "available": {cascade["first"], cascade["then"]} <= serving, "f1": test["f1"],
            "f1_ci95": test.get("f1_ci95"), "mean_ms": test["mean_ms"],
            "size_mb": _size_mb(manifest, [cascade["first"], cascade["then"]]),
            "how": f"{test['escalation_rate']:.1%} escalated below calibrated p {cascade['threshold']:.3f}; "
                   "mean latency computed from the pair's measured means"}


def _size_mb(manifest: Mapping[str, Any], names: list[str]) -> float | None:
    """What the route holds: the size of its variant, or of both of the pair."""
    sizes = [manifest.get("variants", {}).get(name, {}).get("size_mb") for name in names]
    return None if None in sizes else sum(sizes)  # unrounded: the page rounds it once, as it does the variants'


def route_rows(manifest: Mapping[str, Any], figures: Mapping[str, VariantFigures],
               serving: set[str]) -> list[dict[str, Any]]:
    """``auto`` and ``cascade`` where each exists: F1 on the test split, its interval, mean end-to-end ms."""
    return [row for row in (auto_row(manifest, figures), cascade_row(manifest, serving)) if row is not None]
