"""Whether the service is ready: shared by /health/ready and the V2 readiness routes."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from service.registry import ServingRegistry


def is_ready(request: Request, registry: ServingRegistry, required: str) -> bool:
    """Every required variant serves with a healthy worker, and the service is not draining; with every variant
    required ('all'), a build running beside the server holds readiness back until it ends."""
    return (registry.is_ready(required) and not failing_workers(request, registry.required_names(required))
            and not request.app.state.drain.draining and not build_holds_readiness(request, required))


def build_holds_readiness(request: Request, required: str) -> bool:
    runner = request.app.state.build
    return runner is not None and runner.running and required.strip() in ("", "all")


def build_status(request: Request) -> dict[str, Any] | None:
    """The build running (or run) beside this server: state, phase, percent, ETA, its steps; None without one."""
    runner = request.app.state.build
    return runner.status() if runner is not None else None


def failing_workers(request: Request, names: list[str]) -> list[str]:
    """Required variants whose batch worker keeps dying (restarted too often within a minute)."""
    batchers = request.app.state.batchers
    return [name for name in names if name in batchers and not batchers[name].healthy]
