"""Locating datasets through nnU-Net's own environment variables and name conventions."""

from __future__ import annotations

import os
from pathlib import Path

from nnunet_synth.errors import NNSynthError


def env_dir(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise NNSynthError(f"environment variable {name} is not set (nnU-Net needs nnUNet_raw, "
                           "nnUNet_preprocessed and nnUNet_results)")
    return Path(value)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    return f"Dataset{int(dataset_id):03d}_{name}"


def find_dataset(dataset_id: int, root_var: str = "nnUNet_raw") -> Path | None:
    """The folder DatasetXXX_* for this id under $root_var, or None."""
    root = env_dir(root_var)
    if not root.is_dir():
        return None
    matches = sorted(p for p in root.glob(f"Dataset{int(dataset_id):03d}_*") if p.is_dir())
    if len(matches) > 1:
        raise NNSynthError(f"several folders in {root} use dataset id {dataset_id}: "
                           + ", ".join(p.name for p in matches))
    return matches[0] if matches else None


def require_dataset(dataset_id: int, root_var: str = "nnUNet_raw") -> Path:
    found = find_dataset(dataset_id, root_var)
    if found is None:
        raise NNSynthError(f"no Dataset{int(dataset_id):03d}_* folder in ${root_var} ({env_dir(root_var)})")
    return found
