"""ATLAS v2.0 (T1w in MNI152NLin2009aSym space).

ROOT/Training/R*/sub-X/ses-Y/anat/sub-X_ses-Y_space-..._T1w.nii.gz
ROOT/Training/.../sub-X_ses-Y_space-..._label-L_desc-T1lesion_mask.nii.gz
ROOT/Testing/...  (T1w only: written to imagesTs)
"""

from __future__ import annotations

from pathlib import Path

from nnsynth_datasets.convert.cases import Case, Discovery, bids_entities, find_root, nifti_files, nifti_stem
from nnunet_synth.errors import NNSynthError

T1_SUFFIX = "_T1w"
MASK_SUFFIX = "_label-L_desc-T1lesion_mask"


def _is_root(folder: Path) -> bool:
    return (folder / "Training").is_dir() or (folder / "Testing").is_dir()


def discover(src: Path) -> Discovery:
    root = find_root(src, _is_root)
    if root is None:
        raise NNSynthError(f"{src} does not look like ATLAS v2.0: expected Training/ (and/or Testing/)")
    cases: list[Case] = []
    for split, training in (("Training", True), ("Testing", False)):
        cases.extend(_split_cases(root / split, training))
    return Discovery("atlas2", root, ["T1w"], cases)


def _split_cases(folder: Path, training: bool) -> list[Case]:
    t1s: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for f in nifti_files(folder, recursive=True):
        stem = nifti_stem(f) or ""
        if stem.endswith(T1_SUFFIX):
            t1s[str(f.parent / stem[: -len(T1_SUFFIX)])] = f
        elif stem.endswith(MASK_SUFFIX):
            masks[str(f.parent / stem[: -len(MASK_SUFFIX)])] = f
    cases = []
    for key in sorted(set(t1s) | (set(masks) if training else set())):
        prefix = Path(key)
        entities = bids_entities(prefix.name)
        subject = f"sub-{entities['sub']}" if "sub" in entities else prefix.name
        case_id = f"{subject}_ses-{entities['ses']}" if "ses" in entities else subject
        t1 = t1s.get(key, prefix.parent / f"{prefix.name}{T1_SUFFIX}.nii.gz")
        mask = masks.get(key, prefix.parent / f"{prefix.name}{MASK_SUFFIX}.nii.gz") if training else None
        cases.append(Case(case_id, subject, (("T1w", t1),), mask, training))
    return cases
