"""Before any work: measure this machine, settle the training recipe, print and record the plan."""

from __future__ import annotations

import logging
from dataclasses import replace

from build_models.pipeline.base_step import base_fingerprint, built_base_info
from build_models.pipeline.request import WORK_DIR, BuildRequest
from build_models.pipeline.variant_step import still_valid
from build_models.planning import settle
from build_models.planning.plan import make_plan
from build_models.sources.dataset import LabelledImages, Splits
from vitcore.catalogue import resolve_selection
from vitcore.manifest import Manifest

log = logging.getLogger(__name__)


def settle_and_plan(request: BuildRequest, data: LabelledImages, splits: Splits, manifest: Manifest) -> BuildRequest:
    """Measure this machine, settle the training precision and length, print the plan and record it."""
    costs, trains, size = settle.measured_costs(request.profile, request.threads, request.device, data.label_names,
                                                      request.artifacts_dir / WORK_DIR)
    profile = settle.settle_training(request.profile, costs, size, request.device)
    choice = settle.choice_line(costs, profile, size) if trains else None
    if choice:
        log.info("%s", choice)
    base_built = built_base_info(request.artifacts_dir, base_fingerprint(profile, data, splits)) is not None
    names = resolve_selection(request.variants)
    done = [n for n in names if base_built and not request.force and still_valid(manifest, n, profile)]
    sizes = {split: len(rows) for split, rows in splits.as_dict().items()}
    if profile.eval_limit:
        sizes["test"] = min(sizes["test"], profile.eval_limit)
    inputs = settle.plan_inputs(profile, sizes, names, costs, size,
                                  {"base": base_built, "variants": done}, trains)
    plan = make_plan(inputs, settle.machine_line())
    settle.print_plan(plan)
    manifest.data["plan"] = plan.as_dict()
    manifest.data["step_costs"] = costs.as_dict() if costs else None
    return replace(request, profile=profile)
