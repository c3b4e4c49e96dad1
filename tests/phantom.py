"""A tiny ellipsoid-brain phantom dataset in nnU-Net raw format, for fast unit tests.

Real anatomy comes from the demo cohort (nnsynth_datasets); this phantom only needs the right
structure: two channels, lesion masks, anatomical label maps with the standard classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

LABELS = {"background": 0, "csf": 1, "gray_matter": 2, "white_matter": 3, "lesion": 4}
MEANS = {0: (0.0, 0.0), 1: (150.0, 900.0), 2: (420.0, 450.0), 3: (360.0, 400.0), 4: (900.0, 200.0)}


def phantom_case(rng: np.random.Generator, shape: tuple[int, int, int], with_lesion: bool):
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    radius = np.sqrt(((grid / np.array([0.85, 0.9, 0.8])[:, None, None, None]) ** 2).sum(0))
    labelmap = np.zeros(shape, np.uint8)
    labelmap[radius < 1.0] = 2
    labelmap[radius < 0.8] = 3
    labelmap[(np.abs(grid[0]) < 0.15) & (np.abs(grid[1]) < 0.35) & (np.abs(grid[2]) < 0.3)] = 1
    lesion = np.zeros(shape, bool)
    if with_lesion:
        centre = rng.uniform(-0.5, 0.5, 3)
        centre[0] = rng.choice([-1, 1]) * rng.uniform(0.35, 0.6)
        r = rng.uniform(0.12, 0.25)
        lesion = (np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0)) < r) & (labelmap >= 2)
        labelmap[lesion] = 4
    images = []
    for c in range(2):
        img = np.zeros(shape, np.float32)
        for k, means in MEANS.items():
            img[labelmap == k] = means[c] * rng.uniform(0.9, 1.1)
        img += rng.normal(0, 20, shape).astype(np.float32) * (labelmap > 0)
        images.append(img)
    return images, lesion.astype(np.uint8), labelmap


def write_phantom_dataset(raw_root: Path, dataset_id: int = 900, n_cases: int = 6,
                          shape: tuple[int, int, int] = (24, 28, 24), seed: int = 0,
                          name: str = "Phantom") -> Path:
    rng = np.random.default_rng(seed)
    folder = Path(raw_root) / f"Dataset{dataset_id:03d}_{name}"
    for sub in ("imagesTr", "labelsTr", "labelmapsTr"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for i in range(n_cases):
        case = f"ph_{i:03d}"
        images, lesion, labelmap = phantom_case(rng, shape, with_lesion=i % 3 != 2)
        for c, img in enumerate(images):
            nib.save(nib.Nifti1Image(img, affine), folder / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        nib.save(nib.Nifti1Image(lesion, affine), folder / "labelsTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(labelmap, affine), folder / "labelmapsTr" / f"{case}.nii.gz")
    dataset_json = {"channel_names": {"0": "DWI", "1": "ADC"}, "labels": {"background": 0, "lesion": 1},
                    "numTraining": n_cases, "file_ending": ".nii.gz", "anatomical_labels": LABELS}
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder
