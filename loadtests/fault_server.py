"""``python -m service`` with one injected fault, for the fault-injection suite (never for serving).

The real app, real artifacts and real runtimes; only ``ServingRegistry.logits`` is wrapped so that a
preprocessed V2 ``PIXELS`` input filled with ``CRASH_VALUE`` kills the batch worker the way a bug outside
its error handling would (an exception that is not an ``Exception``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

CRASH_VALUE = 1.0e6  # far outside any normalised pixel


class InjectedWorkerDeath(BaseException):
    """Not an Exception: escapes every ``except Exception`` on its way, as an unguarded bug would."""


def install() -> None:
    from service.registry import ServingRegistry

    real_logits = ServingRegistry.logits

    def logits(self: ServingRegistry, name: str, inputs: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        if any(isinstance(item, np.ndarray) and item.size and item.flat[0] == CRASH_VALUE for item in inputs):
            raise InjectedWorkerDeath(f"injected worker death in {name!r}")
        return real_logits(self, name, inputs)

    ServingRegistry.logits = logits  # type: ignore[method-assign]


if __name__ == "__main__":
    from service.__main__ import main

    install()
    raise SystemExit(main())
