"""nnUNetTrainerSynth on a real (phantom) nnU-Net preprocessed dataset: does it really inject?"""

import json

import numpy as np
import pytest
import torch

from nnunet_synth.feeding.mixing import is_synthetic_key
from nnunet_synth.feeding.nnunet_format import to_nnunet_case
from nnunet_synth.synthesis.anatomy import AnatomyClasses


def _trainer(paths, cls_name="nnUNetTrainerSynth", configuration="3d_fullres"):
    import nnsynth_trainers.synth_trainer as mod

    pre = paths["nnUNet_preprocessed"] / "Dataset900_Phantom"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    ndim = len(plans["configurations"][configuration]["patch_size"])
    plans["configurations"][configuration]["patch_size"] = [16] * ndim
    plans["configurations"][configuration]["batch_size"] = 2
    plans["continue_training"] = False  # nnU-Net 2.8 run_training sets this key
    dataset_json = json.loads((pre / "dataset.json").read_text())
    trainer = getattr(mod, cls_name)(plans, configuration, 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    return trainer


def test_batches_hold_the_configured_share_of_synthetic_cases(phantom_env):
    trainer = _trainer(phantom_env)
    dl_train, dl_val = trainer.get_dataloaders()
    n_synth = n_total = 0
    for _ in range(10):
        batch = next(dl_train)
        keys = list(batch["keys"])
        n_synth += sum(is_synthetic_key(k) for k in keys)
        n_total += len(keys)
        assert sum(is_synthetic_key(k) for k in keys) == 1  # batch 2 at 50%: exactly one
        # deep supervision: one target per output scale, each with valid labels only
        assert isinstance(batch["target"], list) and len(batch["target"]) > 1
        assert batch["data"].shape[:2] == (2, 2)
        for t in batch["target"]:
            assert set(torch.unique(t).tolist()) <= {-1.0, 0.0, 1.0}
    assert n_synth / n_total == 0.5
    for _ in range(5):
        assert not any(is_synthetic_key(k) for k in next(dl_val)["keys"])


def test_forked_augmentation_workers_get_cases_generated_in_the_main_process(phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "2")
    trainer = _trainer(phantom_env)
    dl_train, dl_val = trainer.get_dataloaders()
    try:
        assert trainer.synth_supply.mode == "feed"   # the copies in the workers cannot generate
        for _ in range(4):
            batch = next(dl_train)
            assert sum(is_synthetic_key(k) for k in batch["keys"]) == 1
            assert set(torch.unique(batch["target"][0]).tolist()) <= {-1.0, 0.0, 1.0}
        assert trainer.synth_supply.feed.produced >= 1
        assert "fed to the augmentation workers" in open(trainer.log_file).read()
    finally:
        trainer.synth_supply.close()
        for loader in (dl_train, dl_val):
            loader._finish()


def test_synthetic_only_variant_and_budget_from_environment(phantom_env, monkeypatch):
    monkeypatch.setenv("NNSYNTH_ITERATIONS", "3")
    monkeypatch.setenv("NNSYNTH_EPOCHS", "2")
    trainer = _trainer(phantom_env, "nnUNetTrainerSynthOnly")
    assert (trainer.num_iterations_per_epoch, trainer.num_epochs) == (3, 2)
    dl_train, _ = trainer.get_dataloaders()
    assert all(is_synthetic_key(k) for k in next(dl_train)["keys"])


def test_engine_cases_are_valid_and_seeded(phantom_env):
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.synthesis.builder import build_engine

    pre = open_preprocessed(900)
    engine = build_engine(TrainingCases.of(pre, pre.identifiers()), log=lambda *a: None)
    classes = AnatomyClasses.from_dataset_json(pre.dataset_json)
    a = to_nnunet_case(engine.make_case(np.random.default_rng(3)))
    b = to_nnunet_case(engine.make_case(np.random.default_rng(3)))
    np.testing.assert_array_equal(a.data, b.data)
    data, seg = a.data, a.seg
    assert data.dtype == np.float32 and data.shape[0] == 2 and seg.shape == (1, *data.shape[1:])
    assert set(np.unique(seg)) <= {-1, 0, 1} and (seg == 1).any()
    lesion = seg[0] == 1
    healthy = engine.healthy_map(a.properties["nnsynth_anatomy"])
    assert np.isin(healthy[lesion], classes.parenchyma).all()   # never in CSF or background
    locs = a.properties["class_locations"][1]
    assert len(locs) and all(seg[tuple(loc)] == 1 for loc in locs[:50])
    # the rendered lesion differs from healthy tissue like the real ones do (DWI bright in the phantom)
    assert data[0][lesion].mean() > data[0][np.isin(a.labelmap, classes.parenchyma)].mean()


def test_missing_label_maps_stop_with_a_clear_message(phantom_env, tmp_path, monkeypatch):
    import shutil

    from nnunet_synth.errors import NNSynthError

    raw = phantom_env["nnUNet_raw"] / "Dataset900_Phantom"
    moved = tmp_path / "labelmaps_moved"
    shutil.move(raw / "labelmapsTr", moved)
    cache = [p for p in (phantom_env["nnUNet_preprocessed"] / "Dataset900_Phantom").glob("nnsynth_labelmaps_*")]
    for c in cache:
        shutil.rmtree(c)
    try:
        trainer = _trainer(phantom_env)
        with pytest.raises(NNSynthError, match="nnsynth labelmaps"):
            trainer.get_dataloaders()
    finally:
        shutil.move(moved, raw / "labelmapsTr")


def test_learned_generator_variant_without_checkpoint_stops_at_start(phantom_env):
    from nnunet_synth.errors import NNSynthError

    trainer = _trainer(phantom_env, "nnUNetTrainerSynthSPADE")
    with pytest.raises(NNSynthError, match="nnsynth train-maskgan"):
        trainer.get_dataloaders()


def test_learned_generator_variants_use_the_trained_generators(phantom_env):
    """The paper's full method on a real nnU-Net dataset: mask GAN lesions rendered by SPADE-3D."""
    import shutil

    from nnunet_synth.cli import main

    assert main(["train-maskgan", "-d", "900", "--steps", "2", "--batch-size", "1", "--n-critic", "1",
                 "--save-every", "2", "--latent-dim", "8", "--gen-filters", "8", "--n-levels", "2",
                 "--final-kernel", "3", "--device", "cpu", "--no-progress"]) == 0
    assert main(["train-translator", "-d", "900", "--arch", "spade", "--steps", "1", "--filters", "4",
                 "--max-filters", "8", "--levels", "2", "--disc-filters", "4,8", "--crop", "16",
                 "--device", "cpu", "--no-progress"]) == 0
    try:
        for variant, source, renderer in (("nnUNetTrainerSynthMaskGAN", "maskgan", "Gaussian-mixture"),
                                          ("nnUNetTrainerSynthSPADE", "maskgan", "spade translator")):
            trainer = _trainer(phantom_env, variant)
            dl_train, _ = trainer.get_dataloaders()
            log = open(trainer.log_file).read()
            assert "mask GAN" in log and renderer in log
            for _ in range(2):
                batch = next(dl_train)
                assert sum(is_synthetic_key(k) for k in batch["keys"]) == 1
                assert set(torch.unique(batch["target"][0]).tolist()) <= {-1.0, 0.0, 1.0}
            case = to_nnunet_case(trainer.synth_engine.make_case(np.random.default_rng(0)))
            assert case.properties["nnsynth_lesion_source"] == source
            assert case.data.shape[0] == 2 and np.isfinite(case.data).all()
            assert (case.labelmap[case.seg[0] == 1] == 4).all()
            trainer.synth_supply.close()
    finally:
        shutil.rmtree(phantom_env["nnUNet_results"] / "Dataset900_Phantom" / "nnsynth", ignore_errors=True)


@pytest.mark.parametrize("cls_name", ["nnUNetTrainerSynth", "nnUNetTrainerSynthInpaint"])
def test_2d_configuration_mixes_synthetic_slices(phantom_2d_env, cls_name):
    """nnU-Net's 2d loader cuts one slice of each (3D) case it loads: synthetic cases go the same way."""
    trainer = _trainer(phantom_2d_env, cls_name, configuration="2d")
    dl_train, _ = trainer.get_dataloaders()
    try:
        for _ in range(3):
            batch = next(dl_train)
            assert sum(is_synthetic_key(k) for k in batch["keys"]) == 1
            assert batch["data"].shape == (2, 2, 16, 16)  # batch, channels, one slice
            assert set(torch.unique(batch["target"][0]).tolist()) <= {0.0, 1.0}
        trainer.on_train_start()
        trainer.on_train_epoch_start()
        loss = trainer.train_step(next(dl_train))["loss"]
        assert np.isfinite(loss)
    finally:
        trainer.synth_supply.close()
