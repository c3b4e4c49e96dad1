"""The real nnU-Net commands end to end on a tiny demo cohort (nothing mocked).

demo cohort -> nnUNetv2_plan_and_preprocess -> nnsynth shrink-plans -> nnUNetv2_train with
nnUNetTrainerBudget and nnUNetTrainerSynth -> nnUNetv2_predict -> nnUNetv2_evaluate_folder,
driven by `nnsynth demo` with a tiny budget, then `nnsynth evaluate` on the predictions.
"""

import json
import math
import os

import pytest
from conftest import run_nnunet

from nnunet_synth.cli import main

pytestmark = pytest.mark.slow


def test_demo_pipeline_runs_every_real_command(tmp_path, monkeypatch):
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "demo"
    code = main(["demo", "--output", str(out), "--subjects", "8", "--spacing", "6", "--real-cases", "3",
                 "--val-cases", "2", "--epochs", "2", "--iterations", "3", "--val-iterations", "1",
                 "--patch", "16", "--stages", "3", "--base-features", "4", "--final-validation"])
    assert code == 0
    report = json.loads((out / "report" / "demo_results.json").read_text())
    assert set(report["results"]) == {"real", "synth"}
    raw = next((out / "nnUNet_raw").glob("Dataset990_*"))
    test_cases = sorted(p.name for p in (raw / "labelsTs").glob("*.nii.gz"))
    assert test_cases
    for arm, result in report["results"].items():
        assert math.isfinite(result["test_dice"]) and 0.0 <= result["test_dice"] <= 1.0
        assert 0.0 <= result["stroke_metrics"]["dice"] <= 1.0 and 0.0 <= result["stroke_metrics"]["lesion_f1"] <= 1.0
        pred = out / f"predictions_{arm}"
        assert sorted(p.name for p in pred.glob("*.nii.gz")) == test_cases
        summary = json.loads((pred / "summary.json").read_text())
        assert len(summary["metric_per_case"]) == len(test_cases)
    results_dir = out / "nnUNet_results" / raw.name
    synth_fold = results_dir / "nnUNetTrainerSynth__nnsynthCPU__3d_fullres" / "fold_0"
    assert (synth_fold / "checkpoint_final.pth").is_file()
    log = "".join(p.read_text() for p in synth_fold.glob("training_log_*.txt"))
    assert "synthesis engine ready" in log and "synthetic fraction of each training batch: 0.5" in log
    assert (synth_fold / "validation" / "summary.json").is_file()  # nnU-Net's final validation (real only)

    metrics_file = tmp_path / "stroke.json"
    assert main(["evaluate", str(raw / "labelsTs"), str(out / "predictions_synth"), "-o", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics["n_cases"] == len(test_cases)
    assert all(math.isfinite(v) for v in metrics["mean"].values())

    # nnU-Net's --c continues a synth run from its checkpoint (the engine is rebuilt, the epoch count goes on)
    env = {**os.environ, "nnUNet_raw": str(out / "nnUNet_raw"), "nnUNet_preprocessed": str(out / "nnUNet_preprocessed"),
           "nnUNet_results": str(out / "nnUNet_results"), "nnUNet_extTrainer": str(report["trainer_path"]),
           "NNSYNTH_EPOCHS": "3", "NNSYNTH_ITERATIONS": "2", "NNSYNTH_VAL_ITERATIONS": "1",
           "NNSYNTH_FINAL_VALIDATION": "0"}
    run_nnunet(["nnUNetv2_train", "990", "3d_fullres", "0", "-tr", "nnUNetTrainerSynth", "-p", "nnsynthCPU",
                "-device", "cpu", "--c"], env)
    log = "".join(p.read_text() for p in synth_fold.glob("training_log_*.txt"))
    assert "Epoch 2" in log and log.count("synthesis engine ready") == 2
