"""Agreement of label maps with reference maps: Dice per tissue class (to judge an estimate against FreeSurfer)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from nnunet_synth.errors import NNSynthError


def dice_per_class(pred: np.ndarray, ref: np.ndarray, labels: dict[str, int]) -> dict[str, float]:
    """Dice of every non-background class present in either map."""
    scores = {}
    for name, value in labels.items():
        if name == "background":
            continue
        p, r = pred == value, ref == value
        total = int(p.sum() + r.sum())
        if total:
            scores[name] = 2.0 * float(np.logical_and(p, r).sum()) / total
    return scores


def labelmap_agreement(pred_dir: Path, ref_dir: Path, labels: dict[str, int],
                       case_ids: list[str] | None = None, file_ending: str = ".nii.gz") -> dict:
    """Dice per tissue class of the maps in pred_dir against same-named maps in ref_dir."""
    cases = case_ids or sorted(p.name[: -len(file_ending)] for p in pred_dir.glob(f"*{file_ending}"))
    per_case = {}
    for case in cases:
        pred_file, ref_file = pred_dir / f"{case}{file_ending}", ref_dir / f"{case}{file_ending}"
        if not ref_file.is_file():
            raise NNSynthError(f"{ref_file}: reference label map missing")
        pred, ref = (np.asanyarray(nib.load(f).dataobj) for f in (pred_file, ref_file))
        if pred.shape != ref.shape:
            raise NNSynthError(f"{ref_file}: shape {ref.shape} differs from {pred.shape} of {pred_file}")
        per_case[case] = dice_per_class(pred, ref, labels)
    names = [n for n in labels if n != "background"]
    mean = {n: float(np.mean(v)) for n in names if (v := [d[n] for d in per_case.values() if n in d])}
    return {"cases": len(per_case), "mean_dice": mean, "per_case": per_case}


def format_agreement(agreement: dict) -> str:
    """Mean Dice per tissue class, one line each."""
    lines = [f"agreement with the reference maps ({agreement['cases']} case(s)), mean Dice per class:"]
    lines.extend(f"  {name:<14} {dice:.3f}" for name, dice in agreement["mean_dice"].items())
    return "\n".join(lines)
