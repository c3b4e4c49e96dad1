"""Domain-randomized rendering, the synthetic-fraction schedule and the stalled-learning guard."""

from __future__ import annotations

import os

import numpy as np
import pytest

from nnunet_synth.renderers.gaussian_mixture import GaussianMixtureRenderer
from nnunet_synth.renderers.randomized import RandomizationConfig, RandomizedRenderer
from nnunet_synth.settings import SettingsError, SynthesisSettings


def _labelmap(shape=(32, 32, 32)):
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    r = np.sqrt((grid ** 2).sum(0))
    lm = np.full(shape, -1, np.int16)
    lm[r < 1.0] = 0
    lm[r < 0.9] = 2
    lm[r < 0.6] = 3
    lm[r < 0.15] = 1
    lm[(np.abs(grid[0] - 0.4) < 0.15) & (np.abs(grid[1]) < 0.2) & (np.abs(grid[2]) < 0.2)] = 4
    return lm


def _renderer(**cfg) -> RandomizedRenderer:
    rng = np.random.default_rng(0)
    lm = _labelmap()
    means = {-1: (0.0, 0.0), 0: (-1.5, -1.5), 1: (-1.0, 2.0), 2: (0.3, 0.2), 3: (0.0, -0.1), 4: (2.0, -1.2)}
    image = np.zeros((2, *lm.shape), np.float32)
    for k, m in means.items():
        image[:, lm == k] = np.array(m, np.float32)[:, None]
    image += rng.normal(0, 0.1, image.shape).astype(np.float32)
    base = GaussianMixtureRenderer.fit([(image, lm)])
    return RandomizedRenderer(base, lesion_value=4, tissue_values=(2, 3), config=RandomizationConfig(**cfg))


def test_randomized_cases_differ_keep_the_lesion_sign_and_are_normalized_like_nnunet():
    renderer = _renderer()
    lm = _labelmap()
    np.testing.assert_array_equal(renderer.lesion_sign(), [1.0, -1.0])  # DWI-like bright, ADC-like dark
    lesion, tissue, inside = lm == 4, np.isin(lm, (2, 3)), lm >= 0
    contrasts = []
    for seed in range(8):
        image = renderer.render(lm, np.random.default_rng(seed))
        assert image.shape == (2, *lm.shape) and image.dtype == np.float32 and np.isfinite(image).all()
        np.testing.assert_allclose(image[:, inside].mean(1), 0, atol=1e-4)  # nnU-Net's z-score over the crop
        np.testing.assert_allclose(image[:, inside].std(1), 1, atol=1e-3)
        outside = np.asarray(renderer.base.classes[-1].mean, np.float32)[:, None]
        assert (image[:, ~inside] == outside).all()  # what nnU-Net's normalization left outside the crop
        contrasts.append(image[:, lesion].mean(1) - image[:, tissue].mean(1))
    contrasts = np.array(contrasts)
    assert (contrasts[:, 0] > 0).all() and (contrasts[:, 1] < 0).all()
    assert contrasts.std(0).min() > 0.1  # every case looks different
    again = renderer.render(lm, np.random.default_rng(3))
    np.testing.assert_array_equal(again, renderer.render(lm, np.random.default_rng(3)))


def test_randomization_parameters_follow_the_config():
    renderer = _renderer(mode="uniform", thick_probability=1.0, max_thickness=3.0, gamma_sd=0.0)
    p = renderer.get_parameters([-1, 0, 1, 2, 3, 4], np.random.default_rng(0))
    assert -1 not in p.means and all(-2.0 <= v <= 2.5 for k in (1, 2, 3) for v in p.means[k])
    assert p.thick_axis in (0, 1, 2) and 1.0 <= p.thickness <= 3.0
    np.testing.assert_array_equal(p.gamma, [1.0, 1.0])
    flat = renderer.get_parameters([0, 2], np.random.default_rng(1), shape=(1, 32, 32))
    assert flat.thick_axis in (1, 2)  # a 2D case (one voxel thick) is never made thicker along its first axis
    with pytest.raises(ValueError, match="mode"):
        RandomizationConfig(mode="wild")
    with pytest.raises(ValueError, match="low <= high"):
        RandomizationConfig(sd_range=(0.5, 0.1))


def test_fraction_schedules_and_their_settings():
    cosine = SynthesisSettings(fraction=0.5, schedule="cosine", fraction_end=0.1)
    assert cosine.fraction_at(0) == 0.5 and cosine.fraction_at(1) == pytest.approx(0.1)
    assert cosine.fraction_at(0.5) == pytest.approx(0.3)
    assert SynthesisSettings(fraction=0.5, schedule="linear", fraction_end=0.0).fraction_at(0.25) == 0.375
    assert SynthesisSettings(fraction=0.4).fraction_at(0.9) == 0.4
    # no end given: the schedule stays at the start share, also when the start comes from the environment
    assert SynthesisSettings(fraction=0.9, schedule="linear").fraction_at(1) == 0.9
    started_at_zero = SynthesisSettings(fraction=0.0, schedule="linear", fraction_end=0.5)
    assert started_at_zero.largest_fraction == 0.5 and SynthesisSettings(fraction=0.0).largest_fraction == 0
    env = SynthesisSettings.from_environment(env={"NNSYNTH_SCHEDULE": "linear", "NNSYNTH_FRACTION_END": "0.2"})
    assert (env.schedule, env.fraction_end) == ("linear", 0.2)
    with pytest.raises(SettingsError, match="NNSYNTH_SCHEDULE"):
        SynthesisSettings.from_environment(env={"NNSYNTH_SCHEDULE": "exp"})


def test_a_fraction_set_in_the_main_process_reaches_forked_workers():
    from nnunet_synth.feeding.mixing import SynthMixDataset, is_synthetic_key

    class Real:
        identifiers = [f"case{i}" for i in range(4)]

    dataset = SynthMixDataset(Real(), supply=None, fraction=0.5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker forked before the schedule changes the share, as nnU-Net's are
        code = 2
        try:
            os.close(write)
            os.read(read, 1)
            np.random.seed(0)
            code = 0 if sum(is_synthetic_key(k) for _ in range(50) for k in dataset.draw_batch_keys(4)) == 0 else 1
        finally:
            os._exit(code)
    os.close(read)
    dataset.fraction = 0.0
    os.write(write, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(ValueError):
        dataset.fraction = 1.5


def test_stalled_learning_is_warned_only_when_real_dice_stays_zero_while_the_loss_falls():
    from nnsynth_trainers.learning_guard import stalled_learning

    falling = list(np.linspace(1.0, 0.5, 45))
    assert "0 for 20 epochs" in stalled_learning({"mean_fg_dice": [0.0] * 45, "train_losses": falling}, 20)
    assert stalled_learning({"mean_fg_dice": [0.0] * 44 + [0.1], "train_losses": falling}, 20) is None
    assert stalled_learning({"mean_fg_dice": [0.0] * 45, "train_losses": falling[::-1]}, 20) is None
    # within the warm-up (the first 20 epochs), Dice 0 is normal
    assert stalled_learning({"mean_fg_dice": [0.0] * 25, "train_losses": falling[:25]}, 20) is None
    # a real-only run (the reference) gets its own advice: nothing to lower, the reference itself failed
    real_only = stalled_learning({"mean_fg_dice": [0.0] * 45, "train_losses": falling}, 20, mixes_synthetic=False)
    assert "real cases only" in real_only and "synthetic fraction" not in real_only


def test_randomized_and_decay_trainers_on_the_phantom(phantom_env):
    from test_synth_trainer import _trainer

    trainer = _trainer(phantom_env, "nnUNetTrainerSynthRandomized")
    dl_train, _ = trainer.get_dataloaders()
    try:
        log = open(trainer.log_file).read()
        assert "domain-randomized renderer" in log and "'bias_log_sd': 0.5" in log  # ranges in the log
        batch = next(dl_train)
        assert np.isfinite(batch["data"].numpy()).all()
    finally:
        trainer.synth_supply.close()
    from nnsynth_trainers.learning_guard import logged_values

    for key, value in (("mean_fg_dice", 0.0), ("train_losses", 0.5)):  # nnU-Net's own logger, as in training
        trainer.logger.log(key, value, 0)
    assert logged_values(trainer.logger, "mean_fg_dice") == [0.0]
    trainer.stall_epochs = 1
    assert trainer.logged_stall_warning() is None  # one epoch: within the warm-up
    for epoch, loss in ((1, 0.4), (2, 0.3), (3, 0.2)):
        for key, value in (("mean_fg_dice", 0.0), ("train_losses", loss)):
            trainer.logger.log(key, value, epoch)
    trainer.stall_epochs = 2
    assert "has been 0 for 2 epochs" in trainer.logged_stall_warning()
    assert "nnsynth WARNING" in open(trainer.log_file).read()
    decay = _trainer(phantom_env, "nnUNetTrainerSynth_decay")
    decay.get_dataloaders()
    try:
        decay.current_epoch = decay.num_epochs - 1
        decay.on_train_epoch_start()
        assert decay.synth_dataset.fraction == pytest.approx(0.1)
        assert "(cosine schedule)" in open(decay.log_file).read()
    finally:
        decay.synth_supply.close()


def test_the_real_only_reference_warns_too_when_it_never_learns_the_lesions(phantom_env):
    """Seen in the evidence experiment: a real-only run kept pseudo-Dice 0 for all 60 epochs (10 cases, seed 3)."""
    from test_synth_trainer import _trainer

    trainer = _trainer(phantom_env, "nnUNetTrainerBudget")
    trainer.stall_epochs = 2
    for epoch, loss in enumerate((0.5, 0.4, 0.3, 0.2)):
        for key, value in (("mean_fg_dice", 0.0), ("train_losses", loss)):
            trainer.logger.log(key, value, epoch)
    warning = trainer.logged_stall_warning()
    assert "real cases only" in warning and "compares against a failed reference" in warning
    assert trainer.logged_stall_warning() is None  # written once
    assert open(trainer.log_file).read().count("nnsynth WARNING") == 1
