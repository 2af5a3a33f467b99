"""``artifacts/manifest.json``: every variant's files (sha256), size, metrics and build facts."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitcore.errors import ArtifactIntegrityError, ManifestError

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_readable(folder: Path) -> None:
    """Let every user read the artifact (some writers create files 0600): the service often runs as
    another user than the build, a container's non-root user reading a mounted folder for one."""
    for path in folder.rglob("*"):
        mode = path.stat().st_mode
        path.chmod(mode | 0o444 | (0o111 if path.is_dir() else 0))


def describe_files(root: Path, folder: Path) -> list[dict[str, Any]]:
    """Every file under ``folder`` with its path relative to ``root``, size and sha256."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files.append({"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size,
                      "sha256": sha256_of(path)})
    return files


def comparable_f1(data: Mapping[str, Any], name: str) -> float | None:
    """Variant ``name``'s F1 as every reader compares it (the router, /variants, the report): the figure on the
    build's evaluation set, the same images for every variant. None when it has none, or when its entry and the
    manifest both name their evaluation set and the two differ (a figure from other images is not comparable).
    Manifests written before the set was recorded name none: their F1 as recorded."""
    metrics = data.get("variants", {}).get(name, {}).get("metrics") or {}
    f1 = metrics.get("f1")
    if f1 is None:
        return None
    expected, recorded = (data.get("evaluation") or {}).get("set_id"), metrics.get("evaluation_set")
    if expected and recorded and expected != recorded:
        return None
    return float(f1)


def selection_f1(data: Mapping[str, Any], name: str) -> float | None:
    """The F1 a variant is chosen on (the router, the report's ``auto`` row): its F1 on the build's selection set,
    a stratified sample of the validation split, so that a choice never rests on the test split it is then
    reported on. Manifests written before validation scores were recorded: the comparable test F1."""
    if not (data.get("selection") or {}).get("set_id"):
        return comparable_f1(data, name)
    validation = data.get("variants", {}).get(name, {}).get("validation") or {}
    if validation.get("set_id") != data["selection"]["set_id"] or validation.get("f1") is None:
        return None
    return float(validation["f1"])


def selection_basis(data: Mapping[str, Any]) -> str:
    """What ``selection_f1`` rests on, in words (for /variants and the report)."""
    selection = data.get("selection") or {}
    if not selection.get("set_id"):
        return "test F1 (this manifest predates validation scores)"
    return f"validation F1 on {selection['images']} validation images (stratified, seed {selection['sample_seed']})"


@dataclass
class Manifest:
    root: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = Path(root) / MANIFEST_FILE
        if not path.exists():
            raise ManifestError(f"no manifest at {path}; build one with `python -m build_models`")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(data.get("variants"), dict):
            raise ManifestError(f"{path} has no 'variants' mapping")
        return cls(Path(root), data)

    @classmethod
    def load_or_new(cls, root: Path) -> Manifest:
        try:
            return cls.load(root)
        except ManifestError:
            return cls(Path(root), {"schema_version": SCHEMA_VERSION, "variants": {}})

    @property
    def variants(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("variants", {})

    def save(self) -> None:
        """Atomic write, so an interrupted build never leaves a half-written manifest."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{MANIFEST_FILE}.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False))
        os.replace(tmp, self.root / MANIFEST_FILE)

    def verify(self, name: str) -> None:
        """Raise ArtifactIntegrityError unless every file of ``name`` exists with its recorded sha256."""
        entry = self.variants.get(name)
        if entry is None:
            raise ArtifactIntegrityError(f"variant {name!r} is not in the manifest")
        for item in entry.get("files", []):
            path = self.root / item["path"]
            if not path.is_file():
                raise ArtifactIntegrityError(f"{item['path']} is missing")
            if sha256_of(path) != item["sha256"]:
                raise ArtifactIntegrityError(f"{item['path']} does not match its sha256 in the manifest")
