"""Tiny fake cohort trees that mirror the real layouts (ISLES 2022, ATLAS v2.0, ISLES 2015) file by file."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (8, 8, 4)
SPACING = (2.0, 2.0, 5.0)
# ISLES 2022's FLAIR lies on another, larger grid: more voxels and a field of view that contains the
# DWI one (DWI voxel centres span x, y in [-8, 6] and z in [-10, 5] mm; FLAIR x, y [-12, 10.5], z [-14, 10]).
FLAIR_SHAPE = (16, 16, 4)
FLAIR_FOV = (24.0, 24.0, 32.0)
FLAIR_ORIGIN = (-12.0, -12.0, -14.0)


def affine_for(shape: tuple[int, ...], fov_mm: tuple[float, ...] = (16.0, 16.0, 20.0),
               origin: tuple[float, ...] = (-8.0, -8.0, -10.0)) -> np.ndarray:
    spacing = [f / s for f, s in zip(fov_mm, shape)]
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine if affine is not None else affine_for(data.shape[:3])), path)
    return path


def image(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (100 + 50 * rng.random(shape)).astype(np.float32)


def mask(seed: int, shape: tuple[int, ...] = SHAPE, empty: bool = False) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    if not empty:
        c = np.random.default_rng(seed).integers(1, np.array(shape) - 2)
        out[c[0]:c[0] + 2, c[1]:c[1] + 2, c[2]:c[2] + 1] = 1
    return out


def flair_affine() -> np.ndarray:
    return affine_for(FLAIR_SHAPE, FLAIR_FOV, FLAIR_ORIGIN)


def flair_ramp(seed: int) -> np.ndarray:
    """int16 FLAIR that is linear in world x (100 + seed + 2 per FLAIR voxel), so resampling is checkable."""
    i = np.arange(FLAIR_SHAPE[0], dtype=np.int16)[:, None, None]
    return np.broadcast_to(100 + seed % 50 + 2 * i, FLAIR_SHAPE).astype(np.int16)


def flair_ramp_at(seed: int, world_x: np.ndarray) -> np.ndarray:
    """The value of flair_ramp(seed) at world x (mm), for comparison after resampling."""
    spacing = FLAIR_FOV[0] / FLAIR_SHAPE[0]
    return 100 + seed % 50 + 2 * (world_x - FLAIR_ORIGIN[0]) / spacing


def make_isles22(root: Path, subjects: int = 3, sessions: int = 1, layout: str = "bids",
                 empty: tuple[int, ...] = (2,), adc_suffix: str = "adc") -> Path:
    """ISLES-2022 tree: Zenodo BIDS (``bids``) or the challenge-time flat ``rawdata`` layout."""
    for s in range(1, subjects + 1):
        sub = f"sub-strokecase{s:04d}"
        for t in range(1, sessions + 1):
            ses = f"ses-{t:04d}"
            prefix = f"{sub}_{ses}"
            seed = 100 * s + t
            if layout == "bids":
                base = root / sub / ses
                files = {"dwi": base / "dwi" / f"{prefix}_dwi.nii.gz",
                         "adc": base / "dwi" / f"{prefix}_{adc_suffix}.nii.gz",
                         "flair": base / "anat" / f"{prefix}_FLAIR.nii.gz"}
            else:
                base = root / "rawdata" / sub / ses
                files = {"dwi": base / f"{prefix}_dwi.nii.gz", "adc": base / f"{prefix}_{adc_suffix}.nii.gz",
                         "flair": base / f"{prefix}_flair.nii.gz"}
            save(files["dwi"], image(seed))
            save(files["adc"], image(seed + 1))
            save(files["flair"], flair_ramp(seed), flair_affine())
            save(root / "derivatives" / sub / ses / f"{prefix}_msk.nii.gz", mask(seed, empty=s in empty))
    return root


def make_atlas2(root: Path, train: int = 2, test: int = 1) -> Path:
    """ATLAS_2 tree with Training/R001/... (T1w + lesion mask) and Testing/R002/... (T1w only)."""
    space = "space-MNI152NLin2009aSym"
    for split, n, site in (("Training", train, "R001"), ("Testing", test, "R002")):
        for i in range(1, n + 1):
            sub = f"sub-{site.lower()}s{i:03d}"
            anat = root / split / site / sub / "ses-1" / "anat"
            save(anat / f"{sub}_ses-1_{space}_T1w.nii.gz", image(i))
            if split == "Training":
                save(anat / f"{sub}_ses-1_{space}_label-L_desc-T1lesion_mask.nii.gz", mask(i))
    return root


def isles15_file(case_dir: Path, tag: str, uid: int) -> Path:
    name = f"VSD.Brain.XX.O.{tag}.{uid}"
    return case_dir / name / f"{name}.nii"


def make_isles15(root: Path, cases: int = 2, test: int = 0) -> Path:
    """SISS tree: Training/<n>/VSD.Brain.XX.O.MR_<seq>.<id>/....nii plus the *OT* mask folder."""
    uid = 70600
    for split, n in (("Training", cases), ("Testing", test)):
        for i in range(1, n + 1):
            case_dir = root / split / str(i)
            for seq in ("MR_Flair", "MR_DWI", "MR_T1", "MR_T2"):
                uid += 1
                save(isles15_file(case_dir, seq, uid), image(uid).astype(np.int16))
            if split == "Training":
                uid += 1
                save(isles15_file(case_dir, "OT", uid), mask(uid).astype(np.int16))
    return root


def make_folder(root: Path, cases: int = 3, channels: int = 2, plain: bool = False,
                names: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """images/ + labels/ folders, nnU-Net style (CASE_0000...) or plain (CASE.nii.gz)."""
    images, labels = root / "images", root / "labels"
    for i in range(cases):
        case = names[i] if names else f"case{i:02d}"
        if plain:
            save(images / f"{case}.nii.gz", image(i))
        else:
            for c in range(channels):
                save(images / f"{case}_{c:04d}.nii.gz", image(10 * i + c))
        save(labels / f"{case}.nii.gz", mask(i))
    return images, labels


def raw_entries(raw: Path) -> list[str]:
    """Everything in $nnUNet_raw, hidden staging folders included (must stay empty after a refusal)."""
    return sorted(p.name for p in raw.iterdir())


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asanyarray(img.dataobj), img.affine
