"""Any cohort as two folders: images and masks paired by case id.

images/CASE_0000.nii.gz, CASE_0001.nii.gz ... (nnU-Net style, several channels) or images/CASE.nii.gz
(one channel); labels/CASE.nii.gz. An optional regular expression maps case ids to patient ids
(first group), so several sessions of one patient stay in one fold.
"""

from __future__ import annotations

import re
from pathlib import Path

from nnsynth_datasets.convert.cases import Case, Discovery, Problem, nifti_files, nifti_stem
from nnunet_synth.errors import NNSynthError

_CHANNEL = re.compile(r"^(.+)_(\d{4})$")


def _stems(folder: Path) -> dict[str, list[Path]]:
    stems: dict[str, list[Path]] = {}
    for f in nifti_files(folder):
        stems.setdefault(nifti_stem(f) or "", []).append(f)
    return stems


def discover(images: Path, labels: Path, channel_names: list[str] | None = None,
             patient_pattern: str | None = None) -> Discovery:
    for folder, what in ((images, "--images"), (labels, "--labels")):
        if not folder.is_dir():
            raise NNSynthError(f"{what} {folder} is not a folder")
    image_stems, label_stems = _stems(images), _stems(labels)
    if not image_stems:
        raise NNSynthError(f"no .nii/.nii.gz files in {images}")
    multichannel = _nnunet_naming(set(image_stems), set(label_stems))
    per_case: dict[str, dict[int, Path]] = {}
    problems: dict[str, list[Problem]] = {}
    for stem, files in image_stems.items():
        case_id, channel = (_CHANNEL.match(stem).groups() if multichannel else (stem, "0"))  # type: ignore[union-attr]
        per_case.setdefault(case_id, {})[int(channel)] = files[0]
        if len(files) > 1:
            problems.setdefault(case_id, []).append(_twice(case_id, files))
    for stem, files in label_stems.items():
        if len(files) > 1:
            problems.setdefault(stem, []).append(_twice(stem, files))
    n_channels = max(max(ch) for ch in per_case.values()) + 1
    names = list(channel_names) if channel_names else (
        ["image"] if n_channels == 1 else [f"image{i}" for i in range(n_channels)])
    if len(names) != n_channels:
        raise NNSynthError(f"--channel-names gives {len(names)} name(s) but the images in {images} have "
                           f"{n_channels} channel(s)")
    try:
        regex = re.compile(patient_pattern) if patient_pattern else None
    except re.error as exc:
        raise NNSynthError(f"--patient-pattern {patient_pattern!r} is not a regular expression ({exc})") from exc
    cases = []
    for case_id in sorted(set(per_case) | set(label_stems)):
        files = per_case.get(case_id, {})
        channels = tuple((names[i], files.get(i, images / (f"{case_id}_{i:04d}.nii.gz" if multichannel
                                                            else f"{case_id}.nii.gz")))
                         for i in range(n_channels))
        mask = label_stems[case_id][0] if case_id in label_stems else labels / f"{case_id}.nii.gz"
        cases.append(Case(case_id, _patient(case_id, regex), channels, mask,
                          problems=tuple(problems.get(case_id, ()))))
    return Discovery("folder", images, names, cases)


def _nnunet_naming(image_stems: set[str], label_stems: set[str]) -> bool:
    """True for nnU-Net naming (CASE_0000 ...), False for plain CASE files named like their masks.

    Plain names may end in four digits too (``p_0001``), so the reading that pairs more images with
    masks wins; a tie (e.g. a label folder that matches neither) keeps nnU-Net naming when every
    image name allows it and the names are not exactly the label names.
    """
    matches = [_CHANNEL.match(s) for s in image_stems]
    if not all(matches):
        return False
    nnunet_hits = len({m.group(1) for m in matches if m} & label_stems)
    plain_hits = len(image_stems & label_stems)
    if nnunet_hits != plain_hits:
        return nnunet_hits > plain_hits
    return image_stems != label_stems


def _twice(case_id: str, files: list[Path]) -> Problem:
    return Problem(case_id, files[0], "same file stored twice: " + " and ".join(p.name for p in files))


def _patient(case_id: str, regex: re.Pattern | None) -> str:
    if regex is None:
        return case_id
    match = regex.search(case_id)
    if not match:
        return case_id
    return match.group(1) if match.groups() else match.group(0)
