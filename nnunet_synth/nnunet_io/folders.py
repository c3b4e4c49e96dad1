"""nnU-Net's three folders, read from its environment variables here and nowhere else.

nnU-Net finds datasets by id under ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results``
(``DatasetXXX_Name``). Every nnsynth command that takes a dataset id goes through these functions, so
a missing variable or an ambiguous id gives the same error everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nnunet_synth.errors import NNSynthError

FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_name(value: str, what: str = "name") -> str:
    """A name that becomes part of a file or folder name (dataset name, plans name): refused when it could
    leave its folder or is not portable. The one check every command uses for such names."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or ".." in value or len(value) > 100:
        raise NNSynthError(f"{what} {value!r} is not a valid name: use letters, digits, '_', '-' and '.' "
                           "(starting with a letter or digit; no '/', '..' or spaces; at most 100 characters)")
    return value


def env_dir(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The folder in environment variable ``name`` (of ``env``, default the process environment)."""
    value = (os.environ if env is None else env).get(name)
    if not value:
        raise NNSynthError(f"environment variable {name} is not set (nnU-Net needs nnUNet_raw, "
                           "nnUNet_preprocessed and nnUNet_results)")
    return Path(value)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    if not 1 <= int(dataset_id) <= 999:
        raise NNSynthError(f"dataset id must be between 1 and 999 (nnU-Net's DatasetXXX), got {dataset_id}")
    return f"Dataset{int(dataset_id):03d}_{check_name(name, 'dataset name')}"


def find_dataset(dataset_id: int, root_var: str = "nnUNet_raw", env: Mapping[str, str] | None = None) -> Path | None:
    """The folder DatasetXXX_* for this id under $root_var, or None."""
    root = env_dir(root_var, env)
    if not root.is_dir():
        return None
    matches = sorted(p for p in root.glob(f"Dataset{int(dataset_id):03d}_*") if p.is_dir())
    if len(matches) > 1:
        raise NNSynthError(f"several folders in {root} use dataset id {dataset_id}: "
                           + ", ".join(p.name for p in matches))
    return matches[0] if matches else None


def require_dataset(dataset_id: int, root_var: str = "nnUNet_raw", env: Mapping[str, str] | None = None) -> Path:
    found = find_dataset(dataset_id, root_var, env)
    if found is None:
        raise NNSynthError(f"no Dataset{int(dataset_id):03d}_* folder in ${root_var} ({env_dir(root_var, env)})")
    return found


@dataclass(frozen=True)
class NNUNetFolders:
    """The raw, preprocessed and results folders of one dataset (those that exist may be None)."""

    dataset_id: int
    raw: Path | None
    preprocessed: Path | None
    results_root: Path

    @classmethod
    def of(cls, dataset_id: int, env: Mapping[str, str] | None = None) -> NNUNetFolders:
        for var in FOLDER_VARIABLES:
            env_dir(var, env)
        return cls(int(dataset_id), find_dataset(dataset_id, "nnUNet_raw", env),
                   find_dataset(dataset_id, "nnUNet_preprocessed", env), env_dir("nnUNet_results", env))

    @property
    def name(self) -> str:
        for folder in (self.preprocessed, self.raw):
            if folder is not None:
                return folder.name
        raise NNSynthError(f"dataset {self.dataset_id} is neither in $nnUNet_raw nor in $nnUNet_preprocessed")

    @property
    def results(self) -> Path:
        """$nnUNet_results/DatasetXXX_Name (may not exist yet)."""
        return self.results_root / self.name

    def require_raw(self) -> Path:
        if self.raw is None:
            return require_dataset(self.dataset_id, "nnUNet_raw")
        return self.raw

    def require_preprocessed(self) -> Path:
        if self.preprocessed is None:
            return require_dataset(self.dataset_id, "nnUNet_preprocessed")
        return self.preprocessed
