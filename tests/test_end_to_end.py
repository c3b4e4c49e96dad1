"""The real nnU-Net commands end to end on a tiny demo cohort (nothing mocked).

demo cohort -> nnUNetv2_plan_and_preprocess -> `nnsynth experiment` (shrink-plans, the subsample as an
extra fold, nnUNetv2_train with nnUNetTrainerBudget and nnUNetTrainerSynth, nnUNetv2_predict,
nnUNetv2_evaluate_folder, nnsynth evaluate) driven by `nnsynth demo` with a tiny budget; then the
experiment resumed and extended, and nnU-Net's --c on a synth run.
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
    tiny = ["--epochs", "2", "--iterations", "3", "--val-iterations", "1", "--patch", "16", "--stages", "3",
            "--base-features", "4"]
    code = main(["demo", "--output", str(out), "--subjects", "8", "--spacing", "6", "--real-cases", "3",
                 "--mosaic-cases", "2", *tiny, "--final-validation"])
    assert code == 0
    report_dir = out / "report"
    report = json.loads((report_dir / "demo_results.json").read_text())
    assert {r["arm"] for r in report["results"]} == {"real", "synth"}
    raw = next((out / "nnUNet_raw").glob("Dataset990_*"))
    test_cases = sorted(p.name for p in (raw / "labelsTs").glob("*.nii.gz"))
    assert test_cases
    for result in report["results"]:
        assert result["n_real"] == 3 and result["seed"] == 0
        assert 0.0 <= result["dice"] <= 1.0 and 0.0 <= result["lesion_f1"] <= 1.0
        pred = out / "experiment" / "runs" / result["name"] / "predictions"
        assert sorted(p.name for p in pred.glob("*.nii.gz")) == test_cases
        summary = json.loads((pred / "summary.json").read_text())
        assert len(summary["metric_per_case"]) == len(test_cases)
        per_case = (report_dir / f"stroke_metrics_{result['name']}.csv").read_text().splitlines()
        assert len(per_case) >= len(test_cases) + 1
    for name in ("results.md", "demo_results.md"):
        assert "| 3 | synth | 1 |" in (report_dir / name).read_text()
    assert (report_dir / "results.csv").read_text().splitlines()[0].startswith("n_real,arm,runs,dice_mean")
    for png in ("dice_vs_real_cases.png", "synthetic_vs_real.png"):
        assert (report_dir / png).read_bytes()[:4] == b"\x89PNG"
    assert report["mosaic"]["rows"][:2] == ["real", "synthetic (real lesions, gmm)"]

    # the subsample is an extra fold after nnU-Net's 5-fold CV; the synth run trained and validated on it
    fold = report["results"][0]["fold"]
    splits = json.loads((out / "nnUNet_preprocessed" / raw.name / "splits_final.json").read_text())
    assert fold >= 5 and len(splits[fold]["train"]) == 3
    design = json.loads((out / "experiment" / "experiment.json").read_text())
    assert not set(splits[fold]["train"]) & set(design["test_set"]["cases"])
    results_dir = out / "nnUNet_results" / raw.name
    synth_fold = results_dir / "nnUNetTrainerSynth__nnsynthCPU__3d_fullres" / f"fold_{fold}"
    assert (synth_fold / "checkpoint_final.pth").is_file()
    log = "".join(p.read_text() for p in synth_fold.glob("training_log_*.txt"))
    assert "synthesis engine ready" in log and "synthetic fraction of each training batch: 0.5" in log
    assert (synth_fold / "validation" / "summary.json").is_file()  # nnU-Net's final validation (real only)

    # resumable: the same grid again skips every finished run; a second seed adds one fold and one run
    env = {"nnUNet_raw": str(out / "nnUNet_raw"), "nnUNet_preprocessed": str(out / "nnUNet_preprocessed"),
           "nnUNet_results": str(out / "nnUNet_results")}
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    before = {r["name"]: (out / "experiment" / "runs" / r["name"] / "result.json").stat().st_mtime_ns
              for r in report["results"]}
    assert main(["experiment", "-d", "990", "--real-cases", "3", "--arms", "real", "--seeds", "2",
                 "-o", str(out / "experiment"), *tiny]) == 0
    results = json.loads((out / "experiment" / "results.json").read_text())
    assert sorted(r["name"] for r in results["runs"]) == ["n003_seed0_real", "n003_seed1_real"]
    assert (out / "experiment" / "runs" / "n003_seed0_real" / "result.json").stat().st_mtime_ns == \
        before["n003_seed0_real"]
    assert len(json.loads((out / "nnUNet_preprocessed" / raw.name / "splits_final.json").read_text())) == \
        len(splits) + 1

    metrics_file = tmp_path / "stroke.json"
    pred = out / "experiment" / "runs" / "n003_seed0_synth" / "predictions"
    assert main(["evaluate", str(raw / "labelsTs"), str(pred), "-o", str(metrics_file)]) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics["n_cases"] == len(test_cases)
    assert all(math.isfinite(v) for v in metrics["mean"].values())

    # nnU-Net's --c continues a synth run from its checkpoint (the engine is rebuilt, the epoch count goes on)
    trainer_path = run_nnunet(["nnsynth", "trainer-path"], dict(os.environ)).strip()
    env = {**os.environ, **env, "nnUNet_extTrainer": trainer_path, "NNSYNTH_EPOCHS": "3",
           "NNSYNTH_ITERATIONS": "2", "NNSYNTH_VAL_ITERATIONS": "1", "NNSYNTH_FINAL_VALIDATION": "0"}
    run_nnunet(["nnUNetv2_train", "990", "3d_fullres", str(fold), "-tr", "nnUNetTrainerSynth", "-p", "nnsynthCPU",
                "-device", "cpu", "--c"], env)
    log = "".join(p.read_text() for p in synth_fold.glob("training_log_*.txt"))
    assert "Epoch 2" in log and log.count("synthesis engine ready") == 2


def test_experiment_with_learned_generators_and_a_held_out_test_set(phantom_preprocessed, tmp_path, monkeypatch):
    """--generators learned: mask GAN + pix2pix trained on the subsample's fold, then the synthetic-only arm;
    the phantom has no labelsTs, so the test set is held out of labelsTr."""
    import shutil

    for var, path in phantom_preprocessed.items():  # a private copy: the experiment adds folds and plans
        shutil.copytree(path, tmp_path / var, symlinks=True)
        monkeypatch.setenv(var, str(tmp_path / var))
    out = tmp_path / "exp"
    args = ["experiment", "-d", "900", "--real-cases", "3", "--arms", "real", "synth-only", "--seeds", "1",
            "--generators", "learned", "--test-cases", "2", "--epochs", "1", "--iterations", "2",
            "--val-iterations", "1", "--patch", "16", "--stages", "3", "--base-features", "4",
            "--maskgan-steps", "2", "--translator-steps", "2", "-o", str(out),
            "--maskgan-args", "--batch-size 2 --n-critic 1 --gen-filters 8 --latent-dim 8 --box 16",
            "--translator-args", "--filters 4 --max-filters 8 --levels 2 --disc-filters 4,8 --crop 16"]
    assert main(args) == 0
    design = json.loads((out / "experiment.json").read_text())
    test_cases = design["test_set"]["cases"]
    assert design["test_set"]["source"] == "held out of labelsTr" and len(test_cases) == 2
    fold = design["subsets"]["n3_seed0"]["fold"]
    assert not set(design["subsets"]["n3_seed0"]["cases"]) & set(test_cases)
    results = tmp_path / "nnUNet_results" / "Dataset900_Phantom"
    for kind in ("maskgan", "pix2pix"):
        from nnunet_synth.generators.checkpoint import load_checkpoint

        ckpt = load_checkpoint(results / "nnsynth" / f"{kind}_fold{fold}.pt")
        assert set(ckpt.extra["train_case_ids"]) <= set(design["subsets"]["n3_seed0"]["cases"])
    fold_dir = results / f"nnUNetTrainerSynthOnlyPix2pix__nnsynthCPU__3d_fullres/fold_{fold}"
    log = "".join(p.read_text() for p in fold_dir.glob("training_log_*.txt"))
    assert "mask GAN" in log and "pix2pix translator" in log
    summary = json.loads((out / "results.json").read_text())
    assert sorted(r["arm"] for r in summary["runs"]) == ["real", "synth-only"]
    for r in summary["runs"]:
        pred = out / "runs" / r["name"] / "predictions"
        assert sorted(p.name for p in pred.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in test_cases]

    # arms are trainers: a later call adds an arm by class name and an out-of-domain test set; nothing is
    # trained again, every run is scored on the new set, and the report gets a block per test set
    raw = tmp_path / "nnUNet_raw" / "Dataset900_Phantom"
    external = tmp_path / "site_b"
    for sub in ("imagesTs", "labelsTs"):
        (external / sub).mkdir(parents=True)
    for case in test_cases:
        for f in raw.glob(f"imagesTr/{case}_*.nii.gz"):
            shutil.copy(f, external / "imagesTs" / f.name)
        shutil.copy(raw / "labelsTr" / f"{case}.nii.gz", external / "labelsTs" / f"{case}.nii.gz")
    real_ckpt = results / f"nnUNetTrainerBudget__nnsynthCPU__3d_fullres/fold_{fold}/checkpoint_final.pth"
    trained_at = real_ckpt.stat().st_mtime_ns
    at = args.index("--arms")
    more = [*args[:at + 1], "real", "synth-only", "nnUNetTrainerSynth_p25", *args[at + 3:]]
    assert main([*more, "--extra-test", str(external)]) == 0
    assert real_ckpt.stat().st_mtime_ns == trained_at
    summary = json.loads((out / "results.json").read_text())
    assert sorted(r["arm"] for r in summary["runs"]) == ["nnUNetTrainerSynth_p25", "real", "synth-only"]
    assert all("site_b" in r["extra_tests"] for r in summary["runs"])
    assert set(summary["test_sets"]) == {"in-domain", "site_b"}
    assert {r["arm"] for r in summary["test_sets"]["site_b"]["paired"]} == {"synth-only", "nnUNetTrainerSynth_p25"}
    assert "## site_b" in (out / "results.md").read_text()
