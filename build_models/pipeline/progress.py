"""One build step recorded in ``build-progress.json`` as it starts and ends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vitcore.build_progress import BuildProgress
from vitcore.errors import BuildError


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


LOCK_FILE = ".build.lock"


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """One build at a time in an artifacts folder: a second one (a build started by hand beside a server's) stops
    at once instead of writing the same manifest. The lock is the kernel's: it ends with the process."""
    import fcntl

    handle = open(root / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole build, closed below
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BuildError(f"another build is running in {root} ({holder}); wait for it or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()
