"""Short, stable digests of JSON-able payloads: cache keys, build keys and fingerprints."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def json_digest(payload: Any, length: int | None = 16) -> str:
    """sha256 of ``payload`` as sorted-key JSON (non-JSON values by ``str``), hex, cut to ``length``."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:length] if length else digest
