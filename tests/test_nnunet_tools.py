"""nnU-Net's recommended residual-encoder plans and its post-training tools, with the Synth trainers.

nnU-Net recommends its ResEnc presets (``nnUNetv2_plan_and_preprocess -pl nnUNetPlannerResEncM``) since
2024, and users pick, ensemble and post-process trained models with ``nnUNetv2_find_best_configuration``,
``nnUNetv2_ensemble`` and ``nnUNetv2_apply_postprocessing``. These tests run the real commands on the
6-case phantom (tests/conftest.py) with a tiny budget, each on a private copy of it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_nnunet

from nnunet_synth.cli import main
from nnunet_synth.feeding.mixing import is_synthetic_key

RESENC = "nnUNetResEncUNetMPlans"
CONFIG = "3d_fullres"
DATASET = "Dataset900_Phantom"
TINY = ["--patch-size", "16", "16", "16", "--stages", "3", "--base-features", "4"]
BUDGET = {"NNSYNTH_EPOCHS": "1", "NNSYNTH_ITERATIONS": "2", "NNSYNTH_VAL_ITERATIONS": "1"}
GMM_VARIANTS = {"nnUNetTrainerSynth": 0.5, "nnUNetTrainerSynth_p25": 0.25, "nnUNetTrainerSynth_p75": 0.75,
                "nnUNetTrainerSynthOnly": 1.0}
LEARNED_VARIANTS = {"nnUNetTrainerSynthMaskGAN": 0.5, "nnUNetTrainerSynthPix2pix": 0.5,
                    "nnUNetTrainerSynthSPADE": 0.5, "nnUNetTrainerSynthOnlyPix2pix": 1.0}


def _network(architecture: dict, deep_supervision: bool = True) -> torch.nn.Module:
    """The network as nnUNetTrainer.build_network_architecture makes it (2 channels, 2 classes)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    return get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                  architecture["_kw_requires_import"], 2, 2, deep_supervision=deep_supervision)


def _private_copy(source: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  copy: tuple[str, ...] = ("nnUNet_raw", "nnUNet_preprocessed")) -> dict[str, Path]:
    """Copies of the session's phantom folders (training adds splits, plans and results to them)."""
    paths = {}
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        paths[var] = tmp_path / var
        if var in copy:
            shutil.copytree(source[var], paths[var], symlinks=True)
        else:
            paths[var].mkdir()
        monkeypatch.setenv(var, str(paths[var]))
    return paths


def _command_env(paths: dict[str, Path], final_validation: bool) -> dict[str, str]:
    """What nnUNetv2_train / _predict need for our trainers, with the tiny budget."""
    from nnsynth_trainers.registration import trainer_path

    return {**os.environ, **{k: str(v) for k, v in paths.items()}, **BUDGET,
            "NNSYNTH_FINAL_VALIDATION": "1" if final_validation else "0", "nnUNet_extTrainer": str(trainer_path()),
            "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "f"}


def _in_process_trainer(pre: Path, plans_name: str, cls_name: str):
    """A Synth trainer built as nnUNetv2_train builds it, with the plans as they are on disk."""
    import nnsynth_trainers.synth_trainer as mod

    plans = json.loads((pre / f"{plans_name}.json").read_text())
    plans["continue_training"] = False  # nnU-Net 2.8 run_training sets this key
    dataset_json = json.loads((pre / "dataset.json").read_text())
    trainer = getattr(mod, cls_name)(plans, CONFIG, 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    return trainer


def _resenc_plans(n_stages: int = 6) -> dict:
    """ResEnc-M plans as nnUNetPlannerResEncM writes them for a brain MRI (6 stages, 1-3-4-6-6-6 blocks)."""
    arch = {"n_stages": n_stages, "features_per_stage": [min(32 * 2**i, 320) for i in range(n_stages)],
            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * n_stages,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n_stages - 1),
            "n_blocks_per_stage": [1, 3, 4, 6, 6, 6][:n_stages], "n_conv_per_stage_decoder": [1] * (n_stages - 1),
            "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    architecture = {"network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
                    "arch_kwargs": arch, "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    return {"plans_name": RESENC, "configurations": {CONFIG: {
        "data_identifier": "nnUNetPlans_3d_fullres", "patch_size": [128, 160, 112], "batch_size": 2,
        "architecture": architecture}}}


def test_shrunk_resenc_plans_keep_a_working_residual_encoder():
    """shrink-plans on ResEnc plans: still a ResidualEncoderUNet, blocks per stage cut or extended."""
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

    from nnunet_synth.nnunet_io.plans import ShrinkSpec, shrink_plans

    for source_stages, stages, blocks in ((6, 4, [1, 3, 4, 6]), (6, 3, [1, 3, 4]), (3, 4, [1, 3, 4, 4])):
        source = _resenc_plans(source_stages)
        patch = 2**stages  # 2 voxels per axis at the bottom (instance norm needs more than one)
        new = shrink_plans(source, CONFIG, "small", ShrinkSpec(patch_size=(patch,) * 3, n_stages=stages,
                                                               base_features=4, max_features=16))
        assert source == _resenc_plans(source_stages)  # the source plans are not changed
        architecture = new["configurations"][CONFIG]["architecture"]
        arch = architecture["arch_kwargs"]
        assert architecture["network_class_name"].endswith(".ResidualEncoderUNet")
        assert "n_conv_per_stage" not in arch  # a plain-U-Net keyword breaks ResidualEncoderUNet
        assert arch["n_blocks_per_stage"] == blocks and arch["n_conv_per_stage_decoder"] == [1] * (stages - 1)
        net = _network(architecture)
        assert isinstance(net, ResidualEncoderUNet)
        assert [len(stage.blocks) for stage in net.encoder.stages] == blocks
        outputs = net(torch.zeros(1, 2, patch, patch, patch))
        assert [tuple(o.shape[2:]) for o in outputs] == [(patch // 2**i,) * 3 for i in range(stages - 1)]


@pytest.mark.slow
def test_every_synth_trainer_works_with_resenc_plans(phantom_preprocessed, tmp_path, monkeypatch, capsys):
    """Plan with nnUNetPlannerResEncM only, shrink, train nnUNetTrainerSynth; every variant gets batches."""
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

    from nnsynth_experiments.design import profile_with
    from nnsynth_experiments.runner import ExperimentConfig, ExperimentRunner

    # a dataset planned with the ResEnc-M planner only (nnU-Net reuses the planner-independent fingerprint)
    paths = _private_copy(phantom_preprocessed, tmp_path, monkeypatch, copy=("nnUNet_raw",))
    pre = paths["nnUNet_preprocessed"] / DATASET
    pre.mkdir()
    shutil.copy(phantom_preprocessed["nnUNet_preprocessed"] / DATASET / "dataset_fingerprint.json", pre)
    env = _command_env(paths, final_validation=False)
    run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", "900", "-pl", "nnUNetPlannerResEncM", "-c", CONFIG,
                "-np", "1"], {**env, "nnUNet_n_proc_DA": "1"})  # the planner fails with 0 threads
    assert not (pre / "nnUNetPlans.json").exists()
    plans = json.loads((pre / f"{RESENC}.json").read_text())
    assert plans["configurations"][CONFIG]["architecture"]["network_class_name"].endswith(".ResidualEncoderUNet")
    assert len(list((pre / "nnUNetPlans_3d_fullres").glob("*.pkl"))) == 6  # ResEnc shares nnU-Net's data folder

    # shrink-plans keeps the residual encoder; nnUNetv2_train mixes synthetic cases into its batches
    assert main(["shrink-plans", "-d", "900", "--source-plans", RESENC, "--plans-name", "nnsynthResEncCPU",
                 *TINY]) == 0
    small = json.loads((pre / "nnsynthResEncCPU.json").read_text())["configurations"][CONFIG]["architecture"]
    assert small["network_class_name"] == plans["configurations"][CONFIG]["architecture"]["network_class_name"]
    assert small["arch_kwargs"]["n_blocks_per_stage"] == [1, 3, 4]
    run_nnunet(["nnUNetv2_train", "900", CONFIG, "0", "-tr", "nnUNetTrainerSynth", "-p", "nnsynthResEncCPU",
                "-device", "cpu"], env)
    fold = paths["nnUNet_results"] / DATASET / f"nnUNetTrainerSynth__nnsynthResEncCPU__{CONFIG}" / "fold_0"
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "synthesis engine ready" in log and "synthetic fraction of each training batch: 0.5" in log
    assert json.loads((fold / "debug.json").read_text())["network"] == "ResidualEncoderUNet"
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    net = _network(checkpoint["init_args"]["plans"]["configurations"][CONFIG]["architecture"])
    net.load_state_dict(checkpoint["network_weights"])  # the trained weights are the shrunk residual encoder
    assert isinstance(net, ResidualEncoderUNet) and checkpoint["trainer_name"] == "nnUNetTrainerSynth"

    # in process, with nnU-Net's unshrunk ResEnc-M plans: each Gaussian-mixture variant's batches hold its share
    for name, fraction in GMM_VARIANTS.items():
        _check_variant(pre, name, fraction)

    # the learned variants, with generators trained on the ResEnc-planned data (plans named, no nnUNetPlans)
    tiny_gan = ["--device", "cpu", "--no-progress", "--plans", RESENC]
    assert main(["train-maskgan", "-d", "900", "--steps", "2", "--batch-size", "1", "--n-critic", "1",
                 "--save-every", "2", "--latent-dim", "8", "--gen-filters", "8", "--n-levels", "2",
                 "--final-kernel", "3", *tiny_gan]) == 0
    for arch in ("pix2pix", "spade"):
        assert main(["train-translator", "-d", "900", "--arch", arch, "--steps", "1", "--filters", "4",
                     "--max-filters", "8", "--levels", "2", "--disc-filters", "4,8", "--crop", "16", *tiny_gan]) == 0
    for name, fraction in LEARNED_VARIANTS.items():
        _check_variant(pre, name, fraction)

    # the experiment runner: paper-resenc prepares on this dataset; cpu-small (shrinks nnUNetPlans) names the fix
    runner = ExperimentRunner(ExperimentConfig(900, ["3"], ["real", "synth"], 1, profile_with("paper-resenc"),
                                               test_cases=2, output=tmp_path / "exp"))
    runs = runner.prepare()
    design = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert design["profile"]["plans"] == RESENC and [r.trainer for r in runs] == ["nnUNetTrainerBudget",
                                                                                  "nnUNetTrainerSynth"]
    assert f"__{RESENC}__" in str(runner._fold_dir(runs[1].trainer, runs[1].fold))
    capsys.readouterr()
    args = ["experiment", "-d", "900", "--real-cases", "3", "--seeds", "1", "--test-cases", "2"]
    assert main([*args, "--profile", "cpu-small"]) == 2
    err = capsys.readouterr().err
    assert "nnUNetPlans.json not found" in err and "nnUNetv2_plan_and_preprocess -d 900 -c 3d_fullres" in err
    assert not (paths["nnUNet_results"] / DATASET / "nnsynth_experiment_cpu-small").exists()
    # and a dataset planned with nnU-Net's default planner only is told to run the ResEnc-M planner
    for var, path in phantom_preprocessed.items():
        monkeypatch.setenv(var, str(path))
    assert main([*args, "--profile", "paper-resenc"]) == 2
    err = capsys.readouterr().err
    assert f"{RESENC}.json not found" in err and "nnUNetv2_plan_and_preprocess -d 900 -pl nnUNetPlannerResEncM" in err
    assert not (phantom_preprocessed["nnUNet_results"] / DATASET / "nnsynth_experiment_paper-resenc").exists()


def _check_variant(pre: Path, name: str, fraction: float) -> None:
    """A ResEnc trainer of the variant: its batches hold its synthetic share and train the network one step."""
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

    trainer = _in_process_trainer(pre, RESENC, name)
    assert isinstance(trainer.network, ResidualEncoderUNet)
    dl_train, _ = trainer.get_dataloaders()
    try:
        batch_size = trainer.batch_size
        for _ in range(2):
            batch = next(dl_train)
            n_synth = sum(is_synthetic_key(k) for k in batch["keys"])
            assert int(np.floor(batch_size * fraction)) <= n_synth <= int(np.ceil(batch_size * fraction)), name
            assert batch["data"].shape[:2] == (batch_size, 2)
            assert tuple(batch["data"].shape[2:]) == tuple(trainer.configuration_manager.patch_size)
            assert set(torch.unique(batch["target"][0]).tolist()) <= {-1.0, 0.0, 1.0}
        trainer.network.train()
        assert np.isfinite(trainer.train_step(batch)["loss"]), name
        log = Path(trainer.log_file).read_text()
        assert f"synthetic fraction of each training batch: {fraction}" in log, name
        assert ("mask GAN" in log) == (trainer.synthesis.lesions == "maskgan"), name
        for renderer in ("pix2pix", "spade"):
            assert (f"{renderer} translator" in log) == (trainer.synthesis.renderer == renderer), name
    finally:
        trainer.synth_supply.close()


@pytest.mark.slow
def test_find_best_configuration_ensemble_and_postprocessing(phantom_preprocessed, tmp_path, monkeypatch):
    """nnU-Net's model selection, ensembling and post-processing on nnUNetTrainerSynth and the baseline."""
    import SimpleITK as sitk
    from nnunetv2.postprocessing.remove_connected_components import apply_postprocessing

    paths = _private_copy(phantom_preprocessed, tmp_path, monkeypatch)
    pre = paths["nnUNet_preprocessed"] / DATASET
    results = paths["nnUNet_results"] / DATASET
    assert main(["shrink-plans", "-d", "900", "--plans-name", "nnsynthTiny", *TINY]) == 0
    env = _command_env(paths, final_validation=True)
    trainers = ("nnUNetTrainerSynth", "nnUNetTrainerBudget")
    # fold 0 is what find_best_configuration -f 0 reads: its validation, probabilities included (--npz)
    for trainer in trainers:
        run_nnunet(["nnUNetv2_train", "900", CONFIG, "0", "-tr", trainer, "-p", "nnsynthTiny", "-device", "cpu",
                    "--npz"], env)
    val_cases = sorted(json.loads((pre / "splits_final.json").read_text())[0]["val"])
    for trainer in trainers:
        validation = results / f"{trainer}__nnsynthTiny__{CONFIG}" / "fold_0" / "validation"
        assert sorted(p.name for p in validation.glob("*.npz")) == [f"{c}.npz" for c in val_cases]
    synth_log = "".join(p.read_text() for p in (results / f"nnUNetTrainerSynth__nnsynthTiny__{CONFIG}" / "fold_0")
                        .glob("training_log_*.txt"))
    assert "synthetic fraction of each training batch: 0.5" in synth_log

    run_nnunet(["nnUNetv2_find_best_configuration", "900", "-c", CONFIG, "-tr", *trainers, "-p", "nnsynthTiny",
                "-f", "0", "-np", "1"], env)
    info = json.loads((results / "inference_information.json").read_text())
    assert [m["trainer"] for m in info["considered_models"]] == list(trainers)
    models = [f"{t}__nnsynthTiny__{CONFIG}" for t in trainers]
    ensemble = f"ensemble___{models[0]}___{models[1]}___0"
    assert set(info["all_results"]) == {*models, ensemble}
    for model in models:  # each model's score is its cross-validation summary
        crossval = results / model / "crossval_results_folds_0"
        summary = json.loads((crossval / "summary.json").read_text())
        assert info["all_results"][model] == pytest.approx(summary["foreground_mean"]["Dice"])
        assert sorted(p.name for p in crossval.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in val_cases]
    assert (results / "ensembles" / ensemble / "summary.json").is_file()
    best = info["best_model_or_ensemble"]
    assert best["selected_model_or_models"][0]["trainer"] in trainers
    assert 0.0 <= best["result_on_crossval_pre_pp"] <= 1.0 and Path(best["postprocessing_file"]).is_file()
    instructions = (results / "inference_instructions.txt").read_text()
    assert "nnUNetv2_predict" in instructions and "-p nnsynthTiny" in instructions
    assert best["postprocessing_file"] in instructions

    # two prediction folders with probabilities -> nnUNetv2_ensemble -> nnUNetv2_apply_postprocessing
    images = tmp_path / "images"
    images.mkdir()
    for case in val_cases:
        for channel in (0, 1):
            (images / f"{case}_{channel:04d}.nii.gz").symlink_to(
                paths["nnUNet_raw"] / DATASET / "imagesTr" / f"{case}_{channel:04d}.nii.gz")
    predictions = []
    for trainer in trainers:
        out = tmp_path / f"pred_{trainer}"
        run_nnunet(["nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", "900", "-c", CONFIG, "-tr", trainer,
                    "-p", "nnsynthTiny", "-f", "0", "-device", "cpu", "--save_probabilities", "--disable_tta",
                    "-npp", "1", "-nps", "1"], env)
        assert sorted(p.name for p in out.glob("*.npz")) == [f"{c}.npz" for c in val_cases]
        predictions.append(out)
    ensembled, postprocessed = tmp_path / "ensemble", tmp_path / "ensemble_pp"
    run_nnunet(["nnUNetv2_ensemble", "-i", *map(str, predictions), "-o", str(ensembled), "-np", "1"], env)
    # an ensemble folder has no plans.json: nnU-Net asks for one of the members' plans
    run_nnunet(["nnUNetv2_apply_postprocessing", "-i", str(ensembled), "-o", str(postprocessed), "-pp_pkl_file",
                best["postprocessing_file"], "-plans_json", best["some_plans_file"], "-np", "1"], env)
    with open(best["postprocessing_file"], "rb") as f:
        pp_fns, pp_kwargs = pickle.load(f)
    for case in val_cases:
        image = sitk.ReadImage(str(images / f"{case}_0000.nii.gz"))
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(ensembled / f"{case}.nii.gz")))
        assert seg.shape == sitk.GetArrayFromImage(image).shape and set(np.unique(seg)) <= {0, 1}
        assert np.issubdtype(seg.dtype, np.integer)
        # the ensemble is the argmax of the two models' mean probabilities
        mean = np.mean([np.load(p / f"{case}.npz")["probabilities"] for p in predictions], axis=0)
        np.testing.assert_array_equal(seg, mean.argmax(0))
        after = sitk.GetArrayFromImage(sitk.ReadImage(str(postprocessed / f"{case}.nii.gz")))
        assert after.shape == seg.shape and not (after.astype(bool) & ~seg.astype(bool)).any()  # only removes
        np.testing.assert_array_equal(after, apply_postprocessing(seg, pp_fns, pp_kwargs))
