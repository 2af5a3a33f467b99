"""What a finished variant was built from, so that a resumed build rebuilds it when that has changed.

Each manifest entry records its ``build_inputs``: the hash of its builder's source file, the profile options
its builder read (recorded as it reads them), and the build keys of the variants it builds from. The base
model's fingerprint and the split are checked for the whole manifest already (a change there clears every
entry). A resumed build compares each finished entry's inputs with the current ones and logs why it rebuilds.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vitcore.catalogue import VariantSpec
from vitcore.hashing import json_digest
from vitcore.manifest import Manifest

ABSENT = "<absent>"


def _plain(value: Any) -> Any:
    """The value as it reads back from the manifest's JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


class RecordedOptions(Mapping[str, Any]):
    """The profile's options; remembers every key a builder looked up, with its value or ABSENT."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = dict(options)
        self.read: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        self.read[key] = _plain(self._options.get(key, ABSENT))
        return self._options[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read[key] = _plain(self._options.get(key, ABSENT))
        return key in self._options

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)


def builder_code_hash(spec: VariantSpec) -> str:
    source = inspect.getsourcefile(spec.build)
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16] if source else "unknown"


def build_inputs(spec: VariantSpec, options_read: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    return {"builder_code": builder_code_hash(spec), "options": dict(sorted(options_read.items())),
            "sources": {name: manifest.variants.get(name, {}).get("build_key") for name in spec.depends_on}}


def key_of(inputs: dict[str, Any]) -> str:
    return json_digest(inputs)


def stale_reasons(entry: dict[str, Any], spec: VariantSpec, options: Mapping[str, Any],
                  manifest: Manifest) -> list[str]:
    """Why a finished entry no longer matches what building it now would use; empty when it still does."""
    recorded = entry.get("build_inputs")
    if recorded is None:
        return ["it was built before build inputs were recorded"]
    reasons = []
    if recorded.get("builder_code") != builder_code_hash(spec):
        reasons.append(f"its builder's code ({Path(inspect.getsourcefile(spec.build) or '?').name}) changed")
    for key, value in recorded.get("options", {}).items():
        now = _plain(options.get(key, ABSENT))
        if now != value:
            reasons.append(f"option {key} changed from {value!r} to {now!r}")
    for name, key in recorded.get("sources", {}).items():
        if manifest.variants.get(name, {}).get("build_key") != key:
            reasons.append(f"{name}, which it is built from, was rebuilt")
    return reasons
