"""Stroke metrics on hand-built masks with known answers."""

import json

import nibabel as nib
import numpy as np
import pytest

from nnunet_synth.cli import main
from nnunet_synth.evaluation.metrics import dice, lesion_f1, lesion_metrics


def test_both_empty_scores_perfect():
    z = np.zeros((5, 5, 5), bool)
    m = lesion_metrics(z, z, (1, 1, 1))
    assert (m.dice, m.lesion_f1, m.abs_volume_diff_ml, m.abs_count_diff) == (1.0, 1.0, 0.0, 0)


def test_known_dice_and_volume_with_anisotropic_spacing():
    gt = np.zeros((10, 10, 10), bool)
    pred = np.zeros_like(gt)
    gt[0:4, 0:5, 0:5] = True      # 100 voxels
    pred[2:6, 0:5, 0:5] = True    # 100 voxels, 50 shared
    m = lesion_metrics(gt, pred, (0.5, 1.0, 4.0))  # 2 mm^3 per voxel
    assert m.dice == pytest.approx(0.5)
    assert m.gt_volume_ml == pytest.approx(0.2) and m.abs_volume_diff_ml == pytest.approx(0.0)
    pred[6:8, 0:5, 0:5] = True    # +50 voxels, still one component (touches)
    assert lesion_metrics(gt, pred, (0.5, 1.0, 4.0)).abs_volume_diff_ml == pytest.approx(0.1)


def test_lesion_wise_f1_and_count_with_26_connectivity():
    gt = np.zeros((20, 20, 20), bool)
    gt[1:3, 1:3, 1:3] = True      # lesion A: found
    gt[10:12, 10:12, 10:12] = True  # lesion B: missed
    pred = np.zeros_like(gt)
    pred[2, 2, 2] = True          # touches A
    pred[3, 3, 3] = True          # diagonal neighbour of (2,2,2): same component under 26-connectivity
    pred[17:19, 17:19, 17:19] = True  # false positive
    f1, n_gt, n_pred = lesion_f1(gt, pred)
    assert (n_gt, n_pred) == (2, 2)
    assert f1 == pytest.approx(1 / (1 + (1 + 1) / 2))   # TP 1, FP 1, FN 1
    assert lesion_metrics(gt, pred, (1, 1, 1)).abs_count_diff == 0
    assert dice(gt, np.zeros_like(gt)) == 0.0


def test_evaluate_command_writes_json_and_csv(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir(), pred_dir.mkdir()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    a = np.zeros((8, 8, 8), np.uint8)
    a[2:4, 2:4, 2:4] = 1
    for case, g, p in (("c1", a, a), ("c2", np.zeros_like(a), np.zeros_like(a)), ("c3", a, np.zeros_like(a))):
        nib.save(nib.Nifti1Image(g, affine), gt_dir / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(p, affine), pred_dir / f"{case}.nii.gz")
    out = tmp_path / "res" / "metrics.json"
    assert main(["evaluate", str(gt_dir), str(pred_dir), "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["per_case"]) == {"c1", "c2", "c3"}
    assert res["per_case"]["c3"]["dice"] == 0.0 and res["per_case"]["c3"]["abs_volume_diff_ml"] == pytest.approx(0.064)
    assert res["mean"]["dice"] == pytest.approx(2 / 3)
    assert {"dice", "lesion_f1", "abs_volume_diff_ml", "abs_count_diff"} <= set(res["mean"])
    assert out.with_suffix(".csv").read_text().splitlines()[-1].startswith("mean,")
    (pred_dir / "c3.nii.gz").unlink()
    assert main(["evaluate", str(gt_dir), str(pred_dir)]) == 2
    assert "c3.nii.gz" in capsys.readouterr().err
