"""Per-case work, run in the worker processes: read and check every file, then write the case.

A case is written only when all its checks pass and no other case has failed yet (``stop``), so
a cohort with problems costs one read of each file and no writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import nibabel as nib
import numpy as np

from nnsynth_datasets.convert.cases import Case, Problem
from nnsynth_datasets.convert.resample import resample_onto
from nnsynth_datasets.convert.validation import (
    Volume,
    check_covers,
    check_mask_values,
    check_same_grid,
    read_volume,
)

FILE_ENDING = ".nii.gz"


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class Job:
    """What the workers need besides the case: where to write (None = validate only)."""

    stage: Path | None
    binarize: bool = False


@dataclass
class CaseResult:
    case_id: str
    patient_id: str
    training: bool
    problems: list[Problem] = field(default_factory=list)
    written: bool = False
    shape: tuple[int, ...] = ()
    spacing: tuple[float, ...] = ()
    lesion_ml: float | None = None
    binarized: bool = False
    resampled: tuple[str, ...] = ()


def save_on_grid(data: np.ndarray, ref: Volume, path: Path, dtype: type) -> None:
    """Write data with the reference's affine and header (units, qform/sform codes kept)."""
    header = ref.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), ref.affine, header)
    img.header.set_slope_inter(1.0, 0.0)
    nib.save(img, path)


def _read_case(case: Case, job: Job, result: CaseResult) -> tuple[dict[str, Volume], Volume | None]:
    problems = result.problems
    volumes = {}
    for name, path in case.channels:
        vol = read_volume(path, f"{name} channel", case.case_id, problems)
        if vol is not None:
            volumes[name] = vol
    mask = None
    if case.mask is not None:
        mask = read_volume(case.mask, "lesion mask", case.case_id, problems, mask=True)
    ref_name = case.reference_name
    ref = mask if ref_name == "mask" else volumes.get(ref_name)
    if ref is not None:
        for name, vol in volumes.items():
            if name in case.resample:
                check_covers(ref, vol, case.case_id, problems)
            elif vol is not ref:
                check_same_grid(ref, vol, case.case_id, problems)
        if mask is not None and mask is not ref:
            check_same_grid(ref, mask, case.case_id, problems)
    if mask is not None:
        result.binarized = check_mask_values(mask, job.binarize, case.case_id, problems)
    return volumes, mask


def convert_case(case: Case, job: Job, stop: StopFlag | None = None) -> CaseResult:
    """Validate one case and, when allowed, write it into the staging folder."""
    result = CaseResult(case.case_id, case.patient_id, case.training, list(case.problems))
    volumes, mask = _read_case(case, job, result)
    if result.problems:
        return result
    ref = mask if case.reference_name == "mask" else volumes[case.reference_name]
    assert ref is not None
    result.shape, result.spacing = ref.shape, ref.spacing
    lesion = None
    if mask is not None:
        lesion = (mask.data != 0).astype(np.uint8)
        result.lesion_ml = float(lesion.sum() * np.prod(ref.spacing) / 1000.0)
    if job.stage is None or (stop is not None and stop.is_set()):
        return result
    images = job.stage / ("imagesTr" if case.training else "imagesTs")
    images.mkdir(parents=True, exist_ok=True)
    for index, (name, _) in enumerate(case.channels):
        vol = volumes[name]
        data = vol.data
        if name in case.resample:
            data = resample_onto(data, vol.affine, ref.shape, ref.affine)
            result.resampled += (name,)
        save_on_grid(data, ref, images / f"{case.case_id}_{index:04d}{FILE_ENDING}", np.float32)
    if lesion is not None:
        labels = job.stage / "labelsTr"
        labels.mkdir(parents=True, exist_ok=True)
        save_on_grid(lesion, ref, labels / f"{case.case_id}{FILE_ENDING}", np.uint8)
    result.written = True
    return result
