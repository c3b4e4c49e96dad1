"""ISLES 2022 stroke-lesion metrics (also used for ATLAS), per case and on average.

Definitions (the ISLES 2022 challenge metrics): Dice (1.0 when both masks are empty); absolute volume
difference in ml from the header spacing; absolute difference of lesion counts and lesion-wise F1,
both on 26-connected components. A reference lesion is found when the prediction touches it with at
least one voxel; a predicted lesion touching no reference lesion is a false positive.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import cc3d
import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic

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


AFFINE_TOLERANCE_MM = 1e-3


@dataclass
class LabelVolume:
    path: Path
    data: np.ndarray  # integer labels
    affine: np.ndarray
    zooms: tuple[float, ...]


def read_label_volume(path: Path, role: str, merge_labels: bool = False) -> LabelVolume:
    """A 3D label map (0 background, 1 lesion), refused with the file and the reason otherwise.

    Refused: unreadable, truncated or empty files; NaN voxels; non-integer values (a probability map);
    negative labels; labels other than 0/1 unless ``merge_labels`` (then every label > 0 is lesion).
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for bad, empty or truncated files
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise NNSynthError(f"{path}: cannot read the {role} ({why})") from None
    data = np.squeeze(data) if data.ndim > 3 else data
    if data.ndim != 3:
        raise NNSynthError(f"{path}: the {role} has shape {data.shape}; expected one 3D volume")
    if data.dtype.kind == "f":
        if not np.isfinite(data).all():
            raise NNSynthError(f"{path}: the {role} has {int((~np.isfinite(data)).sum())} NaN/Inf voxel(s)")
        fractional = data[data != np.round(data)]
        if fractional.size:
            raise NNSynthError(f"{path}: the {role} holds non-integer values (e.g. {float(fractional[0]):.3g}); "
                               "evaluate takes label maps (nnUNetv2_predict's output), not probabilities")
        data = data.astype(np.int64)
    elif data.dtype.kind not in "iub":
        raise NNSynthError(f"{path}: the {role} has data type {data.dtype}; expected integer labels")
    labels = np.unique(data)
    if labels.min() < 0:
        raise NNSynthError(f"{path}: the {role} has negative labels ({labels[labels < 0][:5].tolist()})")
    extra = labels[labels > 1]
    if extra.size and not merge_labels:
        raise NNSynthError(f"{path}: the {role} holds labels {extra[:6].tolist()} besides 0/1; pass "
                           "--merge-labels to count every label > 0 as lesion")
    return LabelVolume(Path(path), data, np.asarray(img.affine, float),
                       tuple(float(z) for z in img.header.get_zooms()[:3]))


def check_same_grid(gt: LabelVolume, pred: LabelVolume) -> None:
    if gt.data.shape != pred.data.shape:
        raise NNSynthError(f"{pred.path}: prediction of shape {pred.data.shape} is on another grid than the "
                           f"reference {gt.path} ({gt.data.shape})")
    diff = float(np.abs(gt.affine - pred.affine).max())
    if diff > AFFINE_TOLERANCE_MM:
        raise NNSynthError(f"{pred.path}: prediction is on another grid than the reference {gt.path} (affines "
                           f"differ by up to {diff:.3g} mm)")


def evaluate_folders(gt_dir: Path, pred_dir: Path, allow_missing: bool = False,
                     merge_labels: bool = False) -> dict:
    """Metrics for every reference case; a missing prediction is an error unless allow_missing.

    Predictions without a reference are listed (``unmatched_predictions``) and named on the console.
    """
    gt_files, pred_files = _nifti_files(Path(gt_dir)), _nifti_files(Path(pred_dir))
    if not gt_files:
        raise NNSynthError(f"no NIfTI files in {gt_dir}")
    missing = sorted(set(gt_files) - set(pred_files))
    unmatched = sorted(set(pred_files) - set(gt_files))
    if missing and not allow_missing:
        raise NNSynthError(f"{len(missing)} reference case(s) have no prediction in {pred_dir}, e.g. "
                           f"{gt_files[missing[0]].name} (pass --allow-missing to score the rest)")
    scored = sorted(set(gt_files) & set(pred_files))
    if not scored:
        raise NNSynthError(f"no case to score: none of the {len(gt_files)} reference file(s) in {gt_dir} has a "
                           f"prediction in {pred_dir} (file names must match)")
    if unmatched:
        print(f"note: {len(unmatched)} prediction(s) in {pred_dir} have no reference and are not scored, e.g. "
              f"{pred_files[unmatched[0]].name}")
    per_case = {}
    for case in scored:
        gt = read_label_volume(gt_files[case], "reference", merge_labels)
        pred = read_label_volume(pred_files[case], "prediction", merge_labels)
        check_same_grid(gt, pred)
        per_case[case] = asdict(lesion_metrics(gt.data, pred.data, gt.zooms))
    keys = list(asdict(LesionMetrics(0, 0, 0, 0, 0, 0, 0, 0)))
    mean = {k: float(np.mean([c[k] for c in per_case.values()])) for k in keys}
    return {"per_case": per_case, "mean": mean, "n_cases": len(per_case), "missing_predictions": missing,
            "unmatched_predictions": unmatched, "reference_folder": str(gt_dir), "prediction_folder": str(pred_dir)}


def write_results(results: dict, json_file: Path) -> Path:
    """JSON as given plus a CSV (one row per case, then the mean) next to it, both written atomically."""
    json_file = Path(json_file)
    if json_file.is_dir():
        raise NNSynthError(f"{json_file} is a folder; give a file name for the results (e.g. {json_file / 'm.json'})")
    write_json_atomic(json_file, results)
    csv_file = json_file.with_suffix(".csv")
    keys = list(results["mean"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", *keys])
    for case, values in results["per_case"].items():
        writer.writerow([case, *(values[k] for k in keys)])
    writer.writerow(["mean", *(results["mean"][k] for k in keys)])
    write_text_atomic(csv_file, buffer.getvalue())
    return csv_file
