"""Whether the service is ready: shared by /health/ready and the V2 readiness routes."""

from __future__ import annotations

from fastapi import Request

from service.registry import ServingRegistry


def is_ready(request: Request, registry: ServingRegistry, required: str) -> bool:
    """Every required variant serves with a healthy worker, and the service is not draining."""
    return (registry.is_ready(required) and not failing_workers(request, registry.required_names(required))
            and not request.app.state.drain.draining)


def failing_workers(request: Request, names: list[str]) -> list[str]:
    """Required variants whose batch worker keeps dying (restarted too often within a minute)."""
    batchers = request.app.state.batchers
    return [name for name in names if name in batchers and not batchers[name].healthy]
