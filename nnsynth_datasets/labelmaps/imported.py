"""Label maps imported from FreeSurfer / SynthSeg / FastSurfer segmentations.

A mapping {source label: target class} relabels them; ``make`` resamples them (nearest) onto the image grid.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nnunet_synth.errors import NNSynthError

# FreeSurfer aseg / aparc+aseg (also SynthSeg and FastSurfer, which use the same numbers) -> 3 tissues.
FREESURFER_MAPPING = {
    "*": "background",
    "2": "white_matter", "41": "white_matter", "7": "white_matter", "46": "white_matter",
    "16": "white_matter", "28": "white_matter", "60": "white_matter", "77": "white_matter",
    "78": "white_matter", "79": "white_matter", "85": "white_matter", "251-255": "white_matter",
    "3": "gray_matter", "42": "gray_matter", "8": "gray_matter", "47": "gray_matter",
    "10-13": "gray_matter", "17-18": "gray_matter", "26": "gray_matter", "49-54": "gray_matter",
    "58": "gray_matter", "80": "gray_matter", "1000-1035": "gray_matter", "2000-2035": "gray_matter",
    "4": "csf", "5": "csf", "14": "csf", "15": "csf", "24": "csf", "30": "csf", "31": "csf",
    "43": "csf", "44": "csf", "62": "csf", "63": "csf", "72": "csf",
}


def parse_mapping(mapping: dict[str, str], labels: dict[str, int]) -> tuple[dict[int, int], int | None]:
    """{source label or "a-b" range or "*": class name} -> ({source: target value}, default)."""
    table: dict[int, int] = {}
    default = None
    for key, target in mapping.items():
        if str(target) not in labels:
            raise NNSynthError(f"mapping target {target!r} (for {key}) is not an anatomical label "
                               f"({', '.join(labels)})")
        value = labels[str(target)]
        key = str(key).strip()
        if key == "*":
            default = value
            continue
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", key)
        if not match:
            raise NNSynthError(f"mapping key {key!r} is not a label, a range 'a-b' or '*'")
        first = int(match.group(1))
        for source in range(first, int(match.group(2) or first) + 1):
            table[source] = value
    return table, default


def relabel(segmentation: np.ndarray, table: dict[int, int], default: int | None, where: Path) -> np.ndarray:
    seg = np.rint(segmentation).astype(np.int64)
    present = np.unique(seg)
    unmapped = [int(v) for v in present if v not in table and v != 0]
    if unmapped and default is None:
        shown = ", ".join(map(str, unmapped[:12])) + (", ..." if len(unmapped) > 12 else "")
        raise NNSynthError(f"{where}: label(s) {shown} not in the mapping (add them, or a \"*\" default)")
    lut = np.full(int(max(present.max(), max(table, default=0))) + 1, default or 0, np.uint8)
    lut[0] = table.get(0, 0)
    for source, target in table.items():
        lut[source] = target
    return lut[np.clip(seg, 0, None)]


def find_segmentation(folder: Path, case_id: str, pattern: str | None) -> Path | None:
    """The imported segmentation of a case: by --pattern, else the usual tool output names."""
    candidates = [pattern] if pattern else [
        "{case}.nii.gz", "{case}.nii", "{case}.mgz", "{case}_0000_synthseg.nii.gz", "{case}_synthseg.nii.gz",
        "{case}/mri/aparc.DKTatlas+aseg.deep.mgz", "{case}/mri/aseg.mgz", "{case}/mri/aparc+aseg.mgz"]
    for candidate in candidates:
        path = folder / candidate.format(case=case_id)
        if path.is_file():
            return path
    return None
