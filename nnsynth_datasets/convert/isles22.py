"""ISLES 2022: the Zenodo BIDS release and the challenge-time ``rawdata/`` layout.

BIDS:      ROOT/sub-X/ses-Y/{anat/*_FLAIR, dwi/*_dwi, dwi/*_adc}.nii.gz
challenge: ROOT/rawdata/sub-X/ses-Y/*_{adc,dwi,flair}.nii.gz (flat)
masks:     ROOT/derivatives/sub-X/ses-Y/*_msk.nii.gz
Modality suffixes come in any case. DWI, ADC and the mask share a grid; FLAIR does not and is
resampled onto the DWI grid. One case per session, so patients with several sessions stay grouped.
"""

from __future__ import annotations

import re
from pathlib import Path

from nnsynth_datasets.convert.cases import Case, Discovery, Problem, find_root, nifti_files, nifti_stem
from nnunet_synth.errors import NNSynthError

CHANNELS = ("dwi", "adc", "flair")
ON_OTHER_GRID = frozenset({"FLAIR"})
_BIDS_FOLDER = {"dwi": "dwi", "adc": "dwi", "flair": "anat"}
_SUFFIX = re.compile(r"_([A-Za-z0-9]+)$")


def _is_root(folder: Path) -> bool:
    if not (folder / "derivatives").is_dir():
        return False
    return (folder / "rawdata").is_dir() or any(folder.glob("sub-*"))


def _sessions(subject_dirs: list[Path]) -> list[str]:
    """Session folder names of a subject in rawdata and derivatives ("" when there is no session level)."""
    names = {d.name for s in subject_dirs if s.is_dir() for d in s.iterdir() if d.is_dir() and
             d.name.startswith("ses-")}
    return sorted(names) or [""]


def _by_suffix(files: list[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for f in files:
        match = _SUFFIX.search(nifti_stem(f) or "")
        if match:
            found.setdefault(match.group(1).lower(), []).append(f)
    return found


def discover(src: Path, channels: list[str] | None = None) -> Discovery:
    """Cases of an ISLES 2022 tree; expected-but-absent files are kept for validation to report."""
    channels = [c.lower() for c in (channels or CHANNELS)]
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or len(set(channels)) != len(channels) or not channels:
        raise NNSynthError(f"--channels must be distinct names among {', '.join(CHANNELS)} (got {channels})")
    root = find_root(src, _is_root)
    if root is None:
        raise NNSynthError(f"{src} does not look like ISLES 2022: expected sub-*/ (or rawdata/sub-*/) "
                           "next to derivatives/")
    flat = (root / "rawdata").is_dir()
    raw = root / "rawdata" if flat else root
    derivatives = root / "derivatives"
    subjects = sorted({d.name for base in (raw, derivatives) for d in base.glob("sub-*") if d.is_dir()})
    names = [c.upper() for c in channels]
    resample = ON_OTHER_GRID & set(names)
    grid = {"resample": resample, "reference": "mask" if not set(names) - resample else ""}
    cases = [_case(raw / subject / session, derivatives / subject / session, subject, session, channels, flat,
                   grid)
             for subject in subjects for session in _sessions([raw / subject, derivatives / subject])]
    return Discovery("isles22", root, names, cases)


def _case(session_dir: Path, mask_dir: Path, subject: str, session: str, channels: list[str],
          flat: bool, grid: dict) -> Case:
    prefix = f"{subject}_{session}" if session else subject
    problems = []
    found = _by_suffix(nifti_files(session_dir, recursive=True))
    files = []
    for channel in channels:
        candidates = found.get(channel, [])
        if len(candidates) > 1:
            problems.append(Problem(prefix, candidates[0].parent, f"several {channel} files: "
                                    + ", ".join(p.name for p in candidates)))
        folder = session_dir if flat else session_dir / _BIDS_FOLDER[channel]
        files.append((channel.upper(), candidates[0] if candidates else folder / f"{prefix}_{channel}.nii.gz"))
    masks = _by_suffix(nifti_files(mask_dir, recursive=True)).get("msk", [])
    if len(masks) > 1:
        problems.append(Problem(prefix, mask_dir, "several *_msk files: " + ", ".join(p.name for p in masks)))
    mask = masks[0] if masks else mask_dir / f"{prefix}_msk.nii.gz"
    return Case(prefix, subject, tuple(files), mask, problems=tuple(problems), **grid)
