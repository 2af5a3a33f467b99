"""One build step recorded in ``build-progress.json`` as it starts and ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vitcore.build_progress import BuildProgress


@contextmanager
def progress_step(progress: BuildProgress | None, name: str, *with_it: str) -> Iterator[None]:
    """``name`` (and the plan's steps ``with_it``, done by the same code) running while the block runs, then
    done (or failed, when the block raises)."""
    if progress is None:
        yield
        return
    progress.step(name, *with_it)
    try:
        yield
    except BaseException:
        progress.step_done(name, *with_it, state="failed")
        raise
    progress.step_done(name, *with_it)
