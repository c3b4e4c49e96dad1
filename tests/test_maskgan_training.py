"""Mask-GAN training, resume, DDP, sampling CLI and report on a tiny dataset preprocessed by nnU-Net itself.

The module fixture writes 6 synthetic 24^3 cases (sphere brain with CSF/GM/WM label maps and one blob
lesion each) and runs nnU-Net's fingerprint extraction, planning and 3d_fullres preprocessing
in-process (the same API ``nnUNetv2_plan_and_preprocess`` calls), about 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from nnsynth_gan.maskgan import cli as maskgan_cli
from nnsynth_gan.maskgan.train import TrainOptions, train_maskgan
from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import load_checkpoint
from nnunet_synth.generators.lookup import checkpoint_path
from nnunet_synth.lesions.maskgan import MaskSampler
from nnunet_synth.nnunet_io.folds import fold_case_ids
from nnunet_synth.nnunet_io.preprocessed import dataset_fingerprint, open_preprocessed

torch.set_num_threads(1)

DATASET_ID = 931
TINY_MODEL = {"latent_dim": 8, "gen_base_filters": 16, "n_levels": 2, "critic_base_filters": 4,
              "critic_dense": 32, "cond_embed_dim": 8}
ANATOMY = {"background": 0, "csf": 1, "gray_matter": 2, "white_matter": 3, "lesion": 4}


def write_raw_dataset(raw: Path, dataset_id: int, n_cases: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = raw / f"Dataset{dataset_id:03d}_MaskTiny"
    for sub in ("imagesTr", "labelsTr", "labelmapsTr"):
        (folder / sub).mkdir(parents=True)
    n = 24
    grid = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).astype(float)
    radius = np.sqrt(((grid - (n - 1) / 2) ** 2).sum(-1))
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    for i in range(n_cases):
        labels = np.select([radius < 5, radius < 8, radius < 10], [3, 2, 1], 0).astype(np.uint8)
        centre = rng.uniform(8, 15, 3)
        r = rng.uniform(2.6, 3.8)
        lesion = (np.sqrt(((grid - centre) ** 2).sum(-1)) < r) & (labels > 1)
        labels[lesion] = 4
        image = np.choose(labels, [0, 30, 80, 100, 160]).astype(np.float32) + rng.normal(0, 2, labels.shape)
        image[labels == 0] = 0
        case = f"case{i:03d}"
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine), folder / "imagesTr" / f"{case}_0000.nii.gz")
        nib.save(nib.Nifti1Image(lesion.astype(np.uint8), affine), folder / "labelsTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), folder / "labelmapsTr" / f"{case}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "DWI"}, "labels": {"background": 0, "lesion": 1}, "numTraining": n_cases,
        "file_ending": ".nii.gz", "anatomical_labels": ANATOMY}))
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    root = tmp_path_factory.mktemp("maskgan_nnunet")
    mp = pytest.MonkeyPatch()
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (root / var).mkdir()
        mp.setenv(var, str(root / var))
    write_raw_dataset(root / "nnUNet_raw", DATASET_ID)
    extract_fingerprints([DATASET_ID], num_processes=1, verbose=False, show_progress_bar=False)
    with pytest.MonkeyPatch.context() as planning:
        planning.setenv("nnUNet_n_proc_DA", "1")  # the planner calls torch.set_num_threads(n_proc_DA)
        plan_experiments([DATASET_ID])
    preprocess([DATASET_ID], configurations=("3d_fullres",), num_processes=(1,), verbose=False,
               show_progress_bar=False)
    yield root
    mp.undo()


@pytest.fixture
def results(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh nnUNet_results per test, so tests never see each other's checkpoints."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    return tmp_path / "results"


def options(steps: int, **kw) -> TrainOptions:
    base = dict(dataset_id=DATASET_ID, fold="0", steps=steps, batch_size=2, n_critic=2, save_every=2,
                model=dict(TINY_MODEL), progress=False)
    base.update(kw)
    return TrainOptions(**base)


def test_training_reads_only_training_cases_and_changes_weights(results: Path):
    pre = open_preprocessed(DATASET_ID)
    train, val = fold_case_ids(pre, "0")
    assert (pre.root / "splits_final.json").is_file() and val and not set(train) & set(val)
    res = train_maskgan(options(2))
    ckpt = load_checkpoint(res.checkpoint, kind="maskgan", fingerprint=pre.fingerprint)
    assert ckpt.step == 2 and res.checkpoint == checkpoint_path(DATASET_ID, "maskgan", 0)
    used = ckpt.extra["train_case_ids"]
    assert used and set(used) <= set(train) and not set(used) & set(val)
    torch.manual_seed(0)  # the trainer's initial weights come from this seed
    from nnunet_synth.models.maskgan import MaskGANConfig, MaskGenerator
    init = MaskGenerator(ckpt.build_config(MaskGANConfig)).state_dict()
    assert any(not torch.equal(init[k], v) for k, v in ckpt.state_dicts["generator"].items())
    h = ckpt.extra["history"]
    assert len(h["step"]) == 2 and all(np.isfinite(h["critic_loss"]))
    plots = results / pre.name / "nnsynth" / "maskgan_fold0_plots"
    assert (plots / "loss.png").is_file() and (plots / "samples_step000002.png").is_file()
    assert checkpoint_path(DATASET_ID, "maskgan", 0, latest=True).is_file()


def test_continue_reproduces_an_uninterrupted_run(results: Path, tmp_path: Path, monkeypatch):
    straight = train_maskgan(options(4, save_every=100))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "resumed"))
    first = train_maskgan(options(2))
    assert first.step == 2
    with pytest.raises(NNSynthError, match="already at step"):
        train_maskgan(options(2, resume=True))
    resumed = train_maskgan(options(4, resume=True, batch_size=99))  # stored optimization settings win
    assert resumed.step == 4
    for net in ("generator", "critic"):
        a, b = getattr(straight, net).state_dict(), getattr(resumed, net).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{net}.{k} differs after resume"
    assert straight.history == resumed.history
    ckpt = load_checkpoint(resumed.checkpoint)
    assert ckpt.optimizer_states["generator"]["state"][0]["step"].item() == 4


def test_continue_without_checkpoint_is_a_clear_error(results: Path):
    with pytest.raises(NNSynthError, match="no checkpoint"):
        train_maskgan(options(2, resume=True))


def test_foreign_dataset_is_refused(results: Path, dataset: Path):
    res = train_maskgan(options(1))
    pre_root = dataset / "nnUNet_preprocessed"
    other = pre_root / "Dataset932_Other"
    shutil.copytree(pre_root / f"Dataset{DATASET_ID:03d}_MaskTiny", other)
    plans = json.loads((other / "nnUNetPlans.json").read_text())
    plans["dataset_name"] = other.name
    plans["configurations"]["3d_fullres"]["spacing"] = [1.0, 1.0, 1.0]
    (other / "nnUNetPlans.json").write_text(json.dumps(plans))
    try:
        with pytest.raises(NNSynthError) as err:
            MaskSampler.from_checkpoint(res.checkpoint, dataset_fingerprint(932))
        assert "spacing" in str(err.value) and "dataset_name" in str(err.value)
        assert str(res.checkpoint) in str(err.value)
    finally:
        shutil.rmtree(other)


def _ddp_worker(rank: int, world: int, port: int, out: str, env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = train_maskgan(options(2))
    torch.save({"generator": res.generator.state_dict(), "critic": res.critic.state_dict(),
                "divergence": res.rank_divergence, "history": res.history}, f"{out}/rank{rank}.pt")


def test_ddp_two_ranks_end_with_identical_weights(results: Path, tmp_path: Path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: os.environ[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path), env), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for net in ("generator", "critic"):
        for k, v in r0[net].items():
            assert torch.equal(v, r1[net][k]), f"{net}.{k} differs between ranks"
    assert r0["divergence"] == 0.0 and r0["history"] == r1["history"]
    ckpt = load_checkpoint(checkpoint_path(DATASET_ID, "maskgan", 0))
    assert ckpt.extra["world_size"] == 2 and len(ckpt.extra["rng_states"]) == 2
    assert not torch.equal(ckpt.extra["rng_states"][0], ckpt.extra["rng_states"][1])  # per-rank sampling
    for k, v in ckpt.state_dicts["generator"].items():
        assert torch.equal(v, r0["generator"][k])


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nnsynth")
    maskgan_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_train_sample_and_report(results: Path, tmp_path: Path):
    d = str(DATASET_ID)
    assert run_cli("train-maskgan", "-d", d, "--steps", "2", "--batch-size", "2", "--n-critic", "1",
                   "--latent-dim", "8", "--gen-filters", "16", "--n-levels", "2", "--device", "cpu",
                   "--no-progress") == 0
    assert run_cli("train-maskgan", "-d", d, "--steps", "3", "--continue", "--no-progress") == 0
    assert load_checkpoint(checkpoint_path(DATASET_ID, "maskgan", 0)).step == 3

    out = tmp_path / "masks"
    assert run_cli("sample-masks", "-d", d, "--n", "3", "--volume-ml", "0.2", "-o", str(out)) == 0
    files = sorted(out.glob("mask_*.nii.gz"))
    assert len(files) == 3
    img = nib.load(files[0])
    assert np.allclose(img.header.get_zooms(), open_preprocessed(DATASET_ID).spacing)
    meta = json.loads((out / "masks.json").read_text())
    assert meta["masks"][0]["requested_ml"] == pytest.approx(0.2)
    assert "median_relative_volume_error" in meta

    rep_dir = tmp_path / "report"
    assert run_cli("maskgan-report", "-d", d, "--n", "10", "-o", str(rep_dir)) == 0
    rep = json.loads((rep_dir / "report.json").read_text())
    assert rep["n_generated_cases"] == 10 and rep["n_real_cases"] >= 4
    assert rep["n_generated_lesions"] >= 10 and rep["lesions_per_case_prior"]
    assert set(rep["case_volume_ml"]["ks"]) == {"statistic", "pvalue"}
    assert set(rep["lesion_volume_ml"]["ks"]) == {"statistic", "pvalue"}
    assert rep["tissue_share"]["classes"] == ANATOMY
    assert set(rep["tissue_share"]["real"]) == {"background", "csf", "gray_matter", "white_matter"}
    assert rep["inside_brain_share"]["real"]["q50"] == pytest.approx(1.0)
    assert 0 <= rep["volume_conditioning"]["median_relative_error"]
    for name in ("occupancy.png", "generated_examples.png", "report.md"):
        assert (rep_dir / name).stat().st_size > 0
    assert "Volume conditioning" in (rep_dir / "report.md").read_text()


def test_cli_reports_missing_checkpoint(results: Path, tmp_path: Path):
    with pytest.raises(NNSynthError, match="no maskgan checkpoint"):
        run_cli("sample-masks", "-d", str(DATASET_ID), "--n", "1", "-o", str(tmp_path / "x"))
