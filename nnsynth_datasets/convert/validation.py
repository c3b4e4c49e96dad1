"""Input checks that run before anything lands in nnUNet_raw; each problem names its file.

Every check appends to a list instead of raising, so a single pass reports everything wrong
with a cohort (a user fixing 250 cases should not rerun the converter 250 times).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from nnsynth_datasets.convert.cases import Case, Problem
from nnunet_synth.errors import NNSynthError

# Channels and masks may differ by float rounding in their headers; beyond this (in mm, on every
# affine entry) they are on different grids and a voxel-wise pairing would be wrong.
AFFINE_TOLERANCE_MM = 1e-2


@dataclass
class Volume:
    """One 3D file read into memory, with the header needed to write it back on the same grid."""

    path: Path
    role: str
    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))


def read_volume(path: Path, role: str, case_id: str, problems: list[Problem],
                mask: bool = False) -> Volume | None:
    """Read a whole 3D file (truncation only shows when the data is read), or record why not."""
    def fail(message: str) -> None:
        problems.append(Problem(case_id, path, message))

    if not path.is_file():
        fail(f"missing {role}")
        return None
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises many types for a bad header
        fail(f"unreadable or truncated {role} ({_why(exc)})")
        return None
    shape = tuple(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        kind = "4D" if len(shape) > 3 else f"{len(shape)}D"
        fail(f"{kind} {role} of shape {tuple(img.shape)}; expected one 3D volume")
        return None
    try:
        data = np.asanyarray(img.dataobj)
        if not mask:
            data = data.astype(np.float32, copy=False)
        data = data.reshape(shape)
    except Exception as exc:  # EOFError, zlib.error, OSError, ValueError for short files
        fail(f"unreadable or truncated {role} ({_why(exc)})")
        return None
    if data.dtype.kind == "f":
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            fail(f"{bad} NaN/Inf voxel(s) in {role}")
            return None
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        fail(f"singular or non-finite affine in the header of the {role} (voxel axes do not span 3D space); "
             "fix the header's qform/sform")
        return None
    header = img.header if isinstance(img.header, nib.Nifti1Header) else nib.Nifti1Header()
    return Volume(path, role, data, affine, header)


def _why(exc: Exception) -> str:
    """Exception as one line (nibabel's messages span several)."""
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())


def check_same_grid(ref: Volume, other: Volume, case_id: str, problems: list[Problem]) -> bool:
    """Voxel-wise pairing needs identical shapes and (almost) identical affines."""
    if ref.shape != other.shape:
        problems.append(Problem(case_id, other.path, f"shape {other.shape} of {other.role} differs from "
                                f"{ref.shape} of {ref.role} ({ref.path.name})"))
        return False
    diff = float(np.abs(ref.affine - other.affine).max())
    if diff > AFFINE_TOLERANCE_MM:
        problems.append(Problem(case_id, other.path, f"affine of {other.role} differs from {ref.role} "
                                f"({ref.path.name}) by up to {diff:.3g} mm "
                                f"(tolerance {AFFINE_TOLERANCE_MM} mm)"))
        return False
    return True


def check_covers(ref: Volume, other: Volume, case_id: str, problems: list[Problem]) -> bool:
    """A channel resampled onto the reference grid must at least contain the grid's centre.

    Otherwise the headers disagree (wrong file, broken affine) and resampling would give zeros.
    """
    centre = ref.affine @ np.append((np.array(ref.shape) - 1) / 2.0, 1.0)
    index = np.linalg.solve(other.affine, centre)[:3]
    if np.all(index >= -0.5) and np.all(index <= np.array(other.shape) - 0.5):
        return True
    problems.append(Problem(case_id, other.path, f"field of view of {other.role} does not contain the centre "
                            f"of the {ref.role} grid ({ref.path.name}); check the headers"))
    return False


def check_mask_values(mask: Volume, binarize: bool, case_id: str, problems: list[Problem]) -> bool:
    """True when the mask is not binary (it will be binarized); records a problem unless allowed."""
    binary = (mask.data == 0) | (mask.data == 1)
    if binary.all():
        return False
    if not binarize:
        values = np.unique(mask.data[~binary])
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        problems.append(Problem(case_id, mask.path, f"mask has values other than 0/1 ({shown}); "
                                "pass --binarize to treat every non-zero voxel as lesion"))
    return True


def first_file(case: Case) -> Path | None:
    """The file that stands for a case in messages."""
    return case.channels[0][1] if case.channels else case.mask


def check_duplicates(cases: list[Case]) -> list[Problem]:
    """Two cases with one id would overwrite each other's files in imagesTr (one problem per case)."""
    by_id: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_id[case.case_id].append(case)
    problems = []
    for case_id, group in by_id.items():
        if len(group) > 1:
            for case in group:
                others = [str(first_file(c)) for c in group if c is not case]
                problems.append(Problem(case_id, first_file(case), f"duplicate case id {case_id!r} "
                                        f"(also from {', '.join(others)})"))
    return problems


def check_dataset_id(dataset_id: int, overwrite: bool) -> list[Problem]:
    from nnsynth_datasets.raw_dataset import check_dataset_id_free

    try:
        check_dataset_id_free(dataset_id, overwrite)
    except NNSynthError as exc:
        return [Problem("", None, str(exc))]
    return []
