"""The variant registry: each file in ``build_models/variants/`` registers one variant here.

The build CLI, the report, the service and the tests all discover variants through
``list_variants()`` / ``get_variant()``; nothing else names them.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from build_models.errors import UnknownVariantError

if TYPE_CHECKING:
    from build_models.context import BuildContext
    from build_models.predictor import Predictor

BuildFn = Callable[["BuildContext"], dict[str, Any]]


@dataclass(frozen=True)
class VariantSpec:
    name: str
    runtime: str  # "pytorch", "onnxruntime", "openvino" or "tensorflow"
    summary: str
    build: BuildFn  # writes the artifact into ctx.out_dir; returns build facts for the manifest
    predictor: type[Predictor]
    requires: tuple[str, ...] = ()  # importable module names loading and running the artifact needs
    build_requires: tuple[str, ...] = ()  # more modules that only building it needs
    lossless: bool = False  # predictions must match `plain`
    depends_on: tuple[str, ...] = ()  # variants whose artifacts this one builds from
    order: int = 100  # position in listings and reports

    def missing_requirements(self, build: bool = False) -> list[str]:
        modules = self.requires + self.build_requires if build else self.requires
        return [module for module in modules if importlib.util.find_spec(module) is None]


_REGISTRY: dict[str, VariantSpec] = {}


def register_variant(spec: VariantSpec) -> VariantSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"variant {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    import build_models.variants as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def list_variants() -> list[str]:
    _discover()
    return [spec.name for spec in sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))]


def get_variant(name: str) -> VariantSpec:
    _discover()
    if name not in _REGISTRY:
        raise UnknownVariantError(name, list_variants())
    return _REGISTRY[name]


def resolve_selection(selection: str) -> list[str]:
    """``all`` or a comma-separated list of names -> registry-ordered names (validated)."""
    known = list_variants()
    if selection.strip() in ("", "all"):
        return known
    wanted = {name.strip() for name in selection.split(",") if name.strip()}
    pending = list(wanted)
    while pending:  # add dependencies, transitively
        for dependency in get_variant(pending.pop()).depends_on:
            if dependency not in wanted:
                wanted.add(dependency)
                pending.append(dependency)
    return [name for name in known if name in wanted]
