"""What a converter hands to the shared pipeline: cases as lists of files, nothing read yet."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, tied to the file (or case) a user has to look at."""

    case_id: str
    file: Path | None
    message: str

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else f"case {self.case_id}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Case:
    """One case of a cohort: channel files in output order, optional mask, patient for the splits.

    Paths may not exist: a converter records the file it expected, so that validation can name it.
    ``resample`` lists channels that live on another grid and are resampled onto the grid of
    ``reference`` (a channel name, or "mask").
    """

    case_id: str
    patient_id: str
    channels: tuple[tuple[str, Path], ...]
    mask: Path | None
    training: bool = True
    resample: frozenset[str] = frozenset()
    reference: str = ""
    problems: tuple[Problem, ...] = field(default=())

    @property
    def reference_name(self) -> str:
        """The channel whose grid every output of this case is written on."""
        if self.reference:
            return self.reference
        for name, _ in self.channels:
            if name not in self.resample:
                return name
        return "mask"


@dataclass
class Discovery:
    """A cohort as found on disk: channel names (dataset.json order), cases, layout problems."""

    cohort: str
    source: Path
    channel_names: list[str]
    cases: list[Case]
    problems: list[Problem] = field(default_factory=list)


def nifti_stem(path: Path) -> str | None:
    """File name without .nii/.nii.gz, or None for anything that is not NIfTI."""
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def nifti_files(folder: Path, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and nifti_stem(p) is not None and not p.name.startswith("."))


def find_root(src: Path, is_root, depth: int = 2) -> Path | None:
    """src itself or a folder up to ``depth`` levels below it that satisfies is_root.

    Archives are extracted with or without a top-level folder (``ISLES-2022/``, ``SISS2015/``).
    """
    from nnunet_synth.errors import NNSynthError

    if not src.is_dir():
        raise NNSynthError(f"{src} is not a folder")
    level = [src]
    for _ in range(depth + 1):
        for folder in level:
            if is_root(folder):
                return folder
        level = sorted(c for f in level for c in f.iterdir() if c.is_dir() and not c.name.startswith("."))
    return None


def bids_entities(stem: str) -> dict[str, str]:
    """BIDS key-value entities of a file stem (``sub-01_ses-2_T1w`` -> {sub: 01, ses: 2})."""
    return dict(re.findall(r"(?:^|_)([a-zA-Z0-9]+)-([a-zA-Z0-9]+)(?=_|$)", stem))
