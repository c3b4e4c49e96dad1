"""ISLES 2022 stroke-lesion metrics (also used for ATLAS), per case and on average.

Definitions (the ISLES 2022 challenge metrics): Dice (1.0 when both masks are empty); absolute volume
difference in ml from the header spacing; absolute difference of lesion counts and lesion-wise F1,
both on 26-connected components. A reference lesion is found when the prediction touches it with at
least one voxel; a predicted lesion touching no reference lesion is a false positive.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cc3d
import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic

NIFTI_ENDINGS = (".nii.gz", ".nii")


@dataclass
class LesionMetrics:
    dice: float
    abs_volume_diff_ml: float
    abs_count_diff: int
    lesion_f1: float
    gt_volume_ml: float
    pred_volume_ml: float
    gt_count: int
    pred_count: int


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    gt, pred = gt.astype(bool), pred.astype(bool)
    total = gt.sum() + pred.sum()
    return 1.0 if total == 0 else float(2.0 * (gt & pred).sum() / total)


def lesion_f1(gt: np.ndarray, pred: np.ndarray) -> tuple[float, int, int]:
    """(F1, reference lesion count, predicted lesion count) with 26-connectivity."""
    gt_cc = cc3d.connected_components(gt.astype(np.uint8), connectivity=26)
    pred_cc = cc3d.connected_components(pred.astype(np.uint8), connectivity=26)
    n_gt, n_pred = int(gt_cc.max()), int(pred_cc.max())
    if n_gt == 0 and n_pred == 0:
        return 1.0, 0, 0
    tp = len(np.setdiff1d(np.unique(gt_cc[pred.astype(bool)]), [0]))
    fn = n_gt - tp
    fp = n_pred - len(np.setdiff1d(np.unique(pred_cc[gt.astype(bool)]), [0]))
    return float(tp / (tp + (fp + fn) / 2)), n_gt, n_pred


def lesion_metrics(gt: np.ndarray, pred: np.ndarray, spacing_mm: tuple[float, ...]) -> LesionMetrics:
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: reference {gt.shape}, prediction {pred.shape}")
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    gt_b, pred_b = gt > 0, pred > 0
    f1, n_gt, n_pred = lesion_f1(gt_b, pred_b)
    gt_ml, pred_ml = gt_b.sum() * voxel_ml, pred_b.sum() * voxel_ml
    return LesionMetrics(dice=dice(gt_b, pred_b), abs_volume_diff_ml=float(abs(gt_ml - pred_ml)),
                         abs_count_diff=abs(n_gt - n_pred), lesion_f1=f1, gt_volume_ml=float(gt_ml),
                         pred_volume_ml=float(pred_ml), gt_count=n_gt, pred_count=n_pred)


def _case_id(path: Path) -> str:
    for ending in NIFTI_ENDINGS:
        if path.name.endswith(ending):
            return path.name[: -len(ending)]
    return path.stem


def _nifti_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise NNSynthError(f"{folder} is not a folder")
    return {_case_id(p): p for p in sorted(folder.iterdir()) if p.name.endswith(NIFTI_ENDINGS)}


def evaluate_folders(gt_dir: Path, pred_dir: Path, allow_missing: bool = False) -> dict:
    """Metrics for every reference case; a missing prediction is an error unless allow_missing."""
    import nibabel as nib

    gt_files, pred_files = _nifti_files(Path(gt_dir)), _nifti_files(Path(pred_dir))
    if not gt_files:
        raise NNSynthError(f"no NIfTI files in {gt_dir}")
    missing = sorted(set(gt_files) - set(pred_files))
    if missing and not allow_missing:
        raise NNSynthError(f"{len(missing)} reference case(s) have no prediction in {pred_dir}, e.g. "
                           f"{gt_files[missing[0]].name} (pass --allow-missing to score the rest)")
    per_case = {}
    for case in sorted(set(gt_files) & set(pred_files)):
        gt_img, pred_img = nib.load(str(gt_files[case])), nib.load(str(pred_files[case]))
        try:
            m = lesion_metrics(np.asanyarray(gt_img.dataobj), np.asanyarray(pred_img.dataobj),
                               tuple(float(z) for z in gt_img.header.get_zooms()[:3]))
        except ValueError as exc:
            raise NNSynthError(f"{pred_files[case]}: {exc} ({gt_files[case]})") from exc
        per_case[case] = asdict(m)
    keys = list(asdict(LesionMetrics(0, 0, 0, 0, 0, 0, 0, 0)))
    mean = {k: float(np.mean([c[k] for c in per_case.values()])) if per_case else math.nan for k in keys}
    return {"per_case": per_case, "mean": mean, "n_cases": len(per_case), "missing_predictions": missing,
            "reference_folder": str(gt_dir), "prediction_folder": str(pred_dir)}


def write_results(results: dict, json_file: Path) -> Path:
    """JSON as given plus a CSV (one row per case, then the mean) next to it."""
    json_file = Path(json_file)
    json_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(json_file, results)
    csv_file = json_file.with_suffix(".csv")
    keys = list(results["mean"])
    with open(csv_file, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case", *keys])
        for case, values in results["per_case"].items():
            writer.writerow([case, *(values[k] for k in keys)])
        writer.writerow(["mean", *(results["mean"][k] for k in keys)])
    return csv_file
