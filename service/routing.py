"""Which variant answers a request that names none (``/predict/auto``) or one that may be degraded.

The build measured every variant's F1 on the test split, and on a validation sample (the selection set): the
router chooses on the validation F1 (``min_f1`` applies to it too) and reports the chosen variant's test F1,
so no choice rests on the photos it is reported on. Its latency is timed again at start-up on
the serving host, with the service's own thread settings (``VITSERVE_STARTUP_TIMING_S``; with 0, or for
a variant the time did not reach, the build's figures are used, and ``source`` says which). The
batchers know, at every moment, how many requests each variant holds. A request's expected latency
on a variant is its end-to-end figure (for one 200x200 JPEG), with the decode + preprocess cost of the
request's own image sizes in place of the reference image's (``decode``, measured at a few sizes and
interpolated by pixels), one more model pass per further image of the request, plus the batcher's
wait for company, plus one model pass for every request admitted ahead of it. The router picks the
most accurate variant expected to meet the budget (or, with ``prefer=speed``, the fastest that meets
``min_f1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from service.batching import MicroBatcher, QueueFullError
from vitcore.errors import VitserveError
from vitcore.manifest import comparable_f1, selection_f1
from vitcore.timing import REFERENCE_PIXELS, CostCurve

PREFERENCES = ("accuracy", "speed")
# Bounded label values of vitserve_route_choices_total{reason}.
REASONS = ("most_accurate", "most_accurate_within_budget", "fastest_meeting_min_f1", "fastest",
           "degraded_saturated", "none_within_budget", "confident", "escalated")


class ImpossibleConstraintError(VitserveError):
    """No loaded variant could meet the constraints even on an idle service (422)."""


class NoVariantWithinBudgetError(QueueFullError):
    """Some variant could meet the constraints, but none can now: every one is too busy (503, Retry-After)."""


class RoutingUnavailableError(VitserveError):
    """Nothing to route on: no manifest, or no serving variant with a measured F1 and latency (503)."""


class NoCascadeError(VitserveError):
    """The build chose no cascade (fewer than two scored variants): there is none to serve (404)."""


SOURCES = ("build host", "serving host: start-up", "serving host: /benchmark")


@dataclass(frozen=True)
class VariantFigures:
    """One variant's measured F1s (the build's) and latency (the serving host's, or the build's: ``source``)."""

    name: str
    f1: float  # on the test split: what a choice reports
    e2e_ms: float  # end-to-end latency, one 200x200 JPEG (decode + preprocess + forward)
    model_ms: float  # forward-pass latency, one image
    source: str = "build host"
    decode: CostCurve | None = None  # decode + preprocess ms by image pixels, measured on the serving host
    chosen_on: float | None = None  # validation F1, what the router chooses on (None: the test F1, old manifests)

    @property
    def rank_f1(self) -> float:
        return self.f1 if self.chosen_on is None else self.chosen_on

    def decode_ms(self, pixels: int) -> float:
        """Decode + preprocess cost of an image of ``pixels`` (unknown size or no curve: the reference image's)."""
        if self.decode is None or pixels <= 0:
            return self.decode_ms_reference
        return self.decode.at(pixels)

    @property
    def decode_ms_reference(self) -> float:
        return self.decode.at(REFERENCE_PIXELS) if self.decode is not None else 0.0


@dataclass(frozen=True)
class QueueState:
    admitted: int  # requests the variant's batcher holds now
    max_wait_ms: float  # how long a lone request waits for company before its batch runs


@dataclass(frozen=True)
class Constraints:
    max_latency_ms: float | None = None
    min_f1: float | None = None
    prefer: str = "accuracy"


@dataclass(frozen=True)
class RouteChoice:
    variant: str
    reason: str
    expected_ms: float
    f1: float  # the chosen variant's test F1
    chosen_on: float  # the F1 it was chosen on: its validation F1 (test F1 for manifests without one)

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "reason": self.reason, "expected_ms": round(self.expected_ms, 2),
                "measured_f1": round(self.f1, 4), "chosen_on_f1": round(self.chosen_on, 4)}


def expected_ms(figures: VariantFigures, state: QueueState | None, pixels: Sequence[int] = ()) -> float:
    """Expected ms for a request of ``len(pixels)`` images of those sizes (none given: one reference image):
    its images' decode + preprocess, the reference's end-to-end remainder, one more model pass per further
    image, and, with a queue state, the batch wait and one model pass per request admitted ahead."""
    decode = sum(figures.decode_ms(p) for p in pixels) if pixels else figures.decode_ms_reference
    ms = figures.e2e_ms - figures.decode_ms_reference + decode + max(len(pixels) - 1, 0) * figures.model_ms
    ms = max(ms, figures.model_ms)
    if state is None:
        return ms
    return ms + state.max_wait_ms + state.admitted * figures.model_ms


def figures_from_manifest(manifest: Mapping[str, Any], names: list[str]) -> dict[str, VariantFigures]:
    """Variants with a measured F1 (on the build's evaluation set) and a measured latency, from the manifest."""
    latency = manifest.get("latency", {}).get("results", {})
    figures = {}
    for name in names:
        scores = f1_scores(manifest, name)
        measured = latency.get(name, {})
        e2e, model = measured.get("end_to_end", {}).get("mean_ms"), measured.get("model", {}).get("mean_ms")
        if scores is not None and e2e and model:
            figures[name] = VariantFigures(name, scores[0], float(e2e), float(model), chosen_on=scores[1])
    return figures


def f1_scores(manifest: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    """(test F1 on the build's evaluation set, validation F1 to choose on), or None without both."""
    test, chosen_on = comparable_f1(manifest, name), selection_f1(manifest, name)
    return None if test is None or chosen_on is None else (test, chosen_on)


def host_summary(measured: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The p50 and spread of each mode measured on the serving host, and where from (for /variants)."""
    summary: dict[str, Any] = {"source": source}
    for mode in ("model", "end_to_end"):
        if mode in measured:
            summary[mode] = {key: measured[mode].get(key) for key in ("p50_ms", "p25_ms", "p75_ms", "runs")}
    return summary


def with_host_timing(figures: VariantFigures, measured: Mapping[str, Any], source: str,
                     decode: CostCurve | None) -> VariantFigures:
    """``figures`` with the serving host's p50s (``measured``: {mode: stats}, as vitcore.timing gives them)."""
    e2e = measured.get("end_to_end", {}).get("p50_ms") or figures.e2e_ms
    model = measured.get("model", {}).get("p50_ms") or figures.model_ms
    return replace(figures, e2e_ms=float(e2e), model_ms=float(model), source=source, decode=decode)


def _check_possible(figures: Mapping[str, VariantFigures], states: Mapping[str, QueueState],
                    constraints: Constraints, pixels: Sequence[int] = ()) -> list[VariantFigures]:
    """The variants that meet ``min_f1``; 422 when none could meet the constraints even idle."""
    if not figures:
        raise RoutingUnavailableError("no serving variant has a measured F1 and latency to route on (the "
                                      "manifest has no F1 or latency figures for the variants that serve)")
    best = max(f.rank_f1 for f in figures.values())
    accurate = [f for f in figures.values() if constraints.min_f1 is None or f.rank_f1 >= constraints.min_f1]
    if not accurate:
        raise ImpossibleConstraintError(f"min_f1 {constraints.min_f1:g} is above every loaded variant's measured "
                                        f"validation F1 (the best is {best:.4f})")
    if constraints.max_latency_ms is not None:
        idle = {f.name: expected_ms(f, _idle(states.get(f.name)), pixels) for f in accurate}
        fastest = min(idle, key=idle.__getitem__)
        if idle[fastest] > constraints.max_latency_ms:
            raise ImpossibleConstraintError(
                f"max_latency_ms {constraints.max_latency_ms:g} is below what the fastest qualifying variant is "
                f"expected to take even on an idle service ({fastest}: {idle[fastest]:.2f} ms for this request's "
                f"image(s), from its {figures[fastest].source} figures plus its batch wait)")
    return accurate


def _idle(state: QueueState | None) -> QueueState | None:
    return None if state is None else QueueState(0, state.max_wait_ms)


def choose_variant(figures: Mapping[str, VariantFigures], states: Mapping[str, QueueState],
                   constraints: Constraints, pixels: Sequence[int] = ()) -> RouteChoice:
    """The most accurate variant expected to meet the budget now (ties: the faster), or with ``prefer=speed``
    the fastest meeting ``min_f1``, for a request of images of ``pixels`` (none: one reference image)."""
    if constraints.prefer not in PREFERENCES:
        raise ImpossibleConstraintError(f"prefer must be one of {', '.join(PREFERENCES)}")
    accurate = _check_possible(figures, states, constraints, pixels)
    timed = [(f, expected_ms(f, states.get(f.name), pixels)) for f in accurate]
    budget = constraints.max_latency_ms
    within = [(f, ms) for f, ms in timed if budget is None or ms <= budget]
    if not within:
        raise NoVariantWithinBudgetError(
            f"no variant is expected to answer within {budget:g} ms now: every qualifying variant is busy "
            f"(the best expected is {min(ms for _, ms in timed):.1f} ms); retry in 1 s")
    if constraints.prefer == "speed":
        chosen, ms = min(within, key=lambda pair: (pair[1], -pair[0].rank_f1))
        reason = "fastest_meeting_min_f1" if constraints.min_f1 is not None else "fastest"
    else:
        chosen, ms = max(within, key=lambda pair: (pair[0].rank_f1, -pair[1]))
        reason = "most_accurate_within_budget" if budget is not None else "most_accurate"
    return RouteChoice(chosen.name, reason, ms, chosen.f1, chosen.rank_f1)


def degradation_order(requested: str, figures: Mapping[str, VariantFigures], margin: float) -> list[VariantFigures]:
    """Variants that may answer for a saturated ``requested`` one: cheaper end to end, with a measured F1 within
    ``margin`` of its own; the most accurate first, then the faster."""
    asked = figures.get(requested)
    if asked is None:
        return []
    fallbacks = [f for f in figures.values() if f.name != requested and f.e2e_ms < asked.e2e_ms
                 and f.rank_f1 >= asked.rank_f1 - margin]
    return sorted(fallbacks, key=lambda f: (-f.rank_f1, f.e2e_ms))


@dataclass
class RouterState:
    """What the router reads per request: the figures of the routable variants and their batchers; ``note``
    says where the latency figures come from (shown in /variants)."""

    figures: dict[str, VariantFigures]
    batchers: Mapping[str, MicroBatcher]
    default_max_latency_ms: float | None = None
    note: str = "the build host's figures"
    unavailable: str | None = None  # why nothing can be routed (no manifest): 503 with this reason
    host: dict[str, dict[str, Any]] = field(default_factory=dict)  # every served variant timed here: p50s, source

    def choose(self, constraints: Constraints, pixels: Sequence[int] = ()) -> RouteChoice:
        if self.unavailable is not None:
            raise RoutingUnavailableError(self.unavailable)
        return choose_variant(self.figures, self.queue_states(), constraints, pixels)

    def retimed(self, measured: Mapping[str, Mapping[str, Any]], source: str) -> list[str]:
        """Replace the latency figures of the variants in ``measured`` ({name: {mode: stats}}); their names."""
        for name, stats in measured.items():
            self.host[name] = host_summary(stats, source)
        updated = [name for name in measured if name in self.figures]
        for name in updated:
            old = self.figures[name]
            self.figures[name] = with_host_timing(old, measured[name], source, old.decode)
        return updated

    def queue_states(self) -> dict[str, QueueState]:
        return {name: QueueState(batcher.admitted, batcher.limits.max_wait_ms if batcher.limits.max_batch_size > 1
                                 else 0.0)  # an unbatched variant does not wait for company
                for name, batcher in self.batchers.items() if name in self.figures}
