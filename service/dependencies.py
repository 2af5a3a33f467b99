"""FastAPI dependencies: access to the objects the lifespan put on app.state."""

from __future__ import annotations

from fastapi import Request

from service.registry import ServingRegistry
from service.settings import ServiceSettings


async def get_registry(request: Request) -> ServingRegistry:
    registry: ServingRegistry = request.app.state.registry
    return registry


async def get_settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings
