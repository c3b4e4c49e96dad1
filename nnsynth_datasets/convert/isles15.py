"""ISLES 2015 SISS (also SPES): one numbered folder per case, one folder per sequence, ``.nii`` files.

ROOT/Training/1/VSD.Brain.XX.O.MR_Flair.70614/VSD.Brain.XX.O.MR_Flair.70614.nii
ROOT/Training/1/VSD.Brain.XX.O.OT.70618/VSD.Brain.XX.O.OT.70618.nii   (lesion mask)
ROOT/Testing/...                                                       (no OT: imagesTs)
ROOT may sit below an extra folder (``SISS2015/``). All sequences share the FLAIR grid.
"""

from __future__ import annotations

import re
from pathlib import Path

from nnsynth_datasets.convert.cases import Case, Discovery, Problem, find_root, nifti_files
from nnunet_synth.errors import NNSynthError

CHANNELS = ("flair", "dwi", "t1", "t2")
_SEQUENCE = re.compile(r"(?:^|\.)MR_([A-Za-z0-9]+)(?:\.|$)", re.IGNORECASE)
_MASK = re.compile(r"(?:^|\.)OT(?:\.|$)", re.IGNORECASE)


def _is_root(folder: Path) -> bool:
    return (folder / "Training").is_dir() or (folder / "Testing").is_dir()


def _tag(path: Path, case_dir: Path) -> str | None:
    """"ot" for the lesion mask, the lower-cased sequence (flair, dwi, t1, ...) otherwise."""
    for part in reversed(path.relative_to(case_dir).parts):
        if _MASK.search(part):
            return "ot"
        match = _SEQUENCE.search(part)
        if match:
            return match.group(1).lower()
    return None


def discover(src: Path, channels: list[str] | None = None) -> Discovery:
    channels = [c.lower() for c in (channels or CHANNELS)]
    if len(set(channels)) != len(channels) or not channels or "ot" in channels:
        raise NNSynthError(f"--channels must be distinct sequence names such as {', '.join(CHANNELS)}")
    root = find_root(src, _is_root)
    if root is None:
        raise NNSynthError(f"{src} does not look like ISLES 2015: expected Training/<n>/VSD.Brain.*")
    cases = []
    for split, training, prefix in (("Training", True, "siss"), ("Testing", False, "siss_test")):
        folder = root / split
        if not folder.is_dir():
            continue
        for case_dir in sorted((d for d in folder.iterdir() if d.is_dir()), key=_natural):
            cases.append(_case(case_dir, prefix, channels, training))
    return Discovery("isles15", root, [c.upper() for c in channels], cases)


def _natural(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)


def _case(case_dir: Path, prefix: str, channels: list[str], training: bool) -> Case:
    case_id = f"{prefix}{int(case_dir.name):03d}" if case_dir.name.isdigit() else f"{prefix}_{case_dir.name}"
    found: dict[str, list[Path]] = {}
    for f in nifti_files(case_dir, recursive=True):
        tag = _tag(f, case_dir)
        if tag:
            found.setdefault(tag, []).append(f)
    problems = [Problem(case_id, files[0].parent.parent, f"several {tag} files: " + ", ".join(p.name for p in files))
                for tag, files in found.items() if len(files) > 1 and (tag in channels or tag == "ot")]
    files = tuple((c.upper(), found[c][0] if c in found else case_dir / f"*MR_{c}*.nii") for c in channels)
    mask = None
    if training:
        mask = found["ot"][0] if "ot" in found else case_dir / "*OT*.nii"
    return Case(case_id, case_id, files, mask, training, problems=tuple(problems))
