"""What one build is asked to do, and where in the artifacts folder its parts go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from build_models.profiles import BuildProfile
from vitcore.threads import ThreadSettings

BASE_DIR = "base"

WORK_DIR = ".work"


@dataclass(frozen=True)
class BuildRequest:
    profile: BuildProfile
    artifacts_dir: Path
    variants: str = "all"
    force: bool = False
    threads: ThreadSettings = ThreadSettings()
    device: str = "cpu"  # torch device for training and the torch predictors' build-time evaluation
    plan_only: bool = False  # print the plan and stop before any work
