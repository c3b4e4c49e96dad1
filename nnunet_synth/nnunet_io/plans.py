"""Small nnU-Net plans for CPUs: a copy of the plans with a smaller network, patch and batch.

The copy keeps the configuration's data_identifier and spacing, so nnU-Net trains on the same
preprocessed files without preprocessing again (``nnUNetv2_train ... -p NAME``). Both of nnU-Net's
network families shrink: the plain U-Net (``n_conv_per_stage``) and the residual-encoder U-Net of the
ResEnc presets (``n_blocks_per_stage``, ``nnUNetPlannerResEncM/L/XL``), which stays residual.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic
from nnunet_synth.nnunet_io.folders import check_name


@dataclass
class ShrinkSpec:
    patch_size: tuple[int, ...] | None = None   # None: the source patch, capped at max_patch per axis
    max_patch: int = 48
    n_stages: int = 4
    base_features: int = 8
    max_features: int = 64
    batch_size: int = 2
    convs_per_stage: int = 2


def stage_features(base_features: int, max_features: int, n_stages: int) -> list[int]:
    """Features per stage of a shrunk U-Net: doubling from ``base_features``, capped at ``max_features``."""
    return [min(base_features * 2**i, max_features) for i in range(n_stages)]


def _round_patch(patch: list[int], divisor: int, cap: int) -> list[int]:
    return [max(divisor, (min(p, cap) // divisor) * divisor) for p in patch]


def _per_stage(values: int | list[int], n: int) -> list[int]:
    """A per-stage count list cut, or extended by its last entry, to n stages."""
    values = [values] if isinstance(values, int) else list(values)
    return (values + values[-1:] * n)[:n]


def _stage_counts(arch: dict, spec: ShrinkSpec) -> dict[str, list[int]]:
    """Convolutions (plain U-Net) or residual blocks (ResidualEncoderUNet) per stage of the shrunk network.

    A residual encoder takes ``n_blocks_per_stage`` and no ``n_conv_per_stage`` (an extra keyword breaks
    its constructor); it keeps the source's blocks per stage and its light decoder, so the shrunk network
    is still the architecture the ResEnc planner chose, only narrower and shallower.
    """
    n = spec.n_stages
    if "n_blocks_per_stage" in arch:
        return {"n_blocks_per_stage": _per_stage(arch["n_blocks_per_stage"], n),
                "n_conv_per_stage_decoder": _per_stage(arch.get("n_conv_per_stage_decoder", 1), n - 1)}
    return {"n_conv_per_stage": [spec.convs_per_stage] * n,
            "n_conv_per_stage_decoder": [spec.convs_per_stage] * (n - 1)}


def shrink_plans(plans: dict, configuration: str, plans_name: str, spec: ShrinkSpec) -> dict:
    if configuration not in plans.get("configurations", {}):
        raise NNSynthError(f"configuration {configuration!r} not in the plans "
                           f"(has: {', '.join(plans.get('configurations', {}))})")
    new = copy.deepcopy(plans)
    new["plans_name"] = plans_name
    cfg = new["configurations"][configuration]
    if "inherits_from" in cfg:
        raise NNSynthError(f"configuration {configuration!r} inherits from another; shrink the parent instead")
    arch = cfg["architecture"]["arch_kwargs"]
    ndim = len(cfg["patch_size"])
    if spec.n_stages < 2:
        raise NNSynthError("--stages must be at least 2")
    divisor = 2 ** (spec.n_stages - 1)
    if spec.patch_size is not None:
        patch = list(spec.patch_size)
        if len(patch) != ndim:
            raise NNSynthError(f"--patch-size needs {ndim} values for {configuration}")
        if min(patch) < 1:
            raise NNSynthError(f"--patch-size {patch}: every size must be >= 1")
        bad = [p for p in patch if p % divisor]
        if bad:
            raise NNSynthError(f"patch size {patch} must be divisible by {divisor} for {spec.n_stages} stages")
    else:
        patch = _round_patch(cfg["patch_size"], divisor, spec.max_patch)
    features = stage_features(spec.base_features, spec.max_features, spec.n_stages)
    kernel = [3] * ndim
    arch.update({
        "n_stages": spec.n_stages,
        "features_per_stage": features,
        "kernel_sizes": [kernel] * spec.n_stages,
        "strides": [[1] * ndim] + [[2] * ndim] * (spec.n_stages - 1),
        **_stage_counts(arch, spec),
    })
    cfg["patch_size"] = patch
    cfg["batch_size"] = spec.batch_size
    return new


def write_shrunk_plans(preprocessed_dataset: Path, source_plans: str, plans_name: str,
                       configuration: str, spec: ShrinkSpec) -> Path:
    check_name(plans_name, "--plans-name")
    check_name(source_plans, "--source-plans")
    source = preprocessed_dataset / f"{source_plans}.json"
    if not source.is_file():
        raise NNSynthError(f"no plans file {source}: run nnUNetv2_plan_and_preprocess first")
    if plans_name == source_plans:
        raise NNSynthError("--plans-name must differ from the source plans (the original stays untouched)")
    plans = json.loads(source.read_text())
    new = shrink_plans(plans, configuration, plans_name, spec)
    return write_json_atomic(preprocessed_dataset / f"{plans_name}.json", new)
