"""Patient-grouped cross-validation splits for nnU-Net (``splits_final.json``).

nnU-Net's default 5-fold split is per case: two sessions of one patient can land in training and
validation, which inflates validation Dice. Writing splits_final.json ourselves keeps every
patient's cases in one fold; nnU-Net reads the file from $nnUNet_preprocessed/DatasetXXX_Name/.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

DEFAULT_FOLDS = 5
DEFAULT_SEED = 12345  # nnU-Net's own seed for its default split


def grouped_kfold(case_patients: Mapping[str, str], n_folds: int = DEFAULT_FOLDS,
                  seed: int = DEFAULT_SEED) -> list[dict[str, list[str]]]:
    """n_folds train/val splits, each patient's cases together, fold sizes balanced by case count."""
    groups: dict[str, list[str]] = defaultdict(list)
    for case, patient in case_patients.items():
        groups[patient].append(case)
    if len(groups) < n_folds:
        raise ValueError(f"{len(groups)} patient(s) cannot fill {n_folds} folds")
    patients = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [patients[i] for i in order]
    # Largest groups first, each into the currently smallest fold (stable: shuffled order breaks ties).
    shuffled.sort(key=lambda p: -len(groups[p]))
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for patient in shuffled:
        target = min(range(n_folds), key=lambda f: (len(folds[f]), f))
        folds[target].extend(groups[patient])
    all_cases = sorted(case_patients)
    splits = []
    for fold in folds:
        val = set(fold)
        splits.append({"train": [c for c in all_cases if c not in val], "val": sorted(val)})
    return splits

