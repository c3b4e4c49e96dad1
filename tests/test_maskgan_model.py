"""Mask GAN modules, checkpoint format and fingerprint checks (no dataset needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import GeneratorCheckpoint, config_to_dict, load_checkpoint, save_checkpoint
from nnunet_synth.lesions.geometry import place_box
from nnunet_synth.lesions.maskgan import LocationPrior, MaskSampler, place_lesion
from nnunet_synth.models.maskgan import MaskCritic, MaskGANConfig, MaskGenerator, binarized_volume_ml, gradient_penalty
from nnunet_synth.nnunet_io.fingerprint import DatasetFingerprint

torch.set_num_threads(1)

TINY = dict(latent_dim=8, gen_base_filters=16, n_levels=2, critic_base_filters=4, critic_dense=32,
            cond_embed_dim=8)


def fingerprint(**changes) -> DatasetFingerprint:
    fp = DatasetFingerprint(dataset_name="Dataset901_Tiny", plans_name="nnUNetPlans", configuration="3d_fullres",
                            spacing=(1.5, 1.5, 1.5), patch_size=(20, 20, 20), channel_names={"0": "DWI"},
                            labels={"background": 0, "lesion": 1}, normalization_schemes=("ZScoreNormalization",),
                            transpose_forward=(0, 1, 2))
    return dataclasses.replace(fp, **changes)


@pytest.mark.parametrize("box", [(16, 16, 16), (20, 12, 6)])
def test_generator_and_critic_shapes(box):
    cfg = MaskGANConfig(box_shape=box, **TINY)
    g, d = MaskGenerator(cfg), MaskCritic(cfg)
    z, cond = torch.randn(3, cfg.latent_dim), torch.zeros(3)
    x = g(z, cond)
    assert x.shape == (3, 1, *box)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x, cond).shape == (3,)
    assert all(s % 4 == 0 for s in cfg.gen_shape) and all(a >= b for a, b in zip(cfg.gen_shape, box))


def test_paper_sized_generator_output():
    cfg = MaskGANConfig(box_shape=(128, 128, 32), n_levels=5, gen_base_filters=16)
    assert cfg.base_shape == (4, 4, 1)
    with torch.no_grad():
        assert MaskGenerator(cfg)(torch.randn(1, 128), torch.zeros(1)).shape == (1, 1, 128, 128, 32)


def test_condition_changes_output_and_gradient_penalty_is_finite():
    cfg = MaskGANConfig(box_shape=(8, 8, 8), **TINY)
    g, d = MaskGenerator(cfg), MaskCritic(cfg)
    torch.nn.init.normal_(g.blocks[0].norm.affine.weight)  # zero-initialized: make the condition matter
    z = torch.randn(2, cfg.latent_dim)
    assert not torch.allclose(g(z, torch.full((2,), -2.0)), g(z, torch.full((2,), 2.0)))
    real = torch.ones(2, 1, 8, 8, 8)
    gp = gradient_penalty(d, real, g(z, torch.zeros(2)).detach(), torch.zeros(2))
    assert torch.isfinite(gp) and gp >= 0


def test_volume_loss_teaches_the_condition():
    """The generator's volume term alone makes requested sizes come out ordered and close."""
    torch.manual_seed(0)
    cfg = MaskGANConfig(box_shape=(12, 12, 12), spacing=(1.0, 1.0, 1.0), logvol_mean=float(np.log(0.1)),
                        logvol_std=1.0, **TINY)
    g = MaskGenerator(cfg)
    opt = torch.optim.Adam(g.parameters(), lr=5e-3)
    targets = torch.tensor([0.02, 0.1, 0.4])
    for _ in range(180):
        v = targets[torch.randint(3, (6,))]
        out = g(torch.randn(6, cfg.latent_dim), cfg.condition(v))
        loss = (torch.log(binarized_volume_ml(out, cfg) + cfg.voxel_ml) - torch.log(v)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sampler = MaskSampler(g, LocationPrior(np.full((3, 3), 0.5)), np.log(targets.numpy()))
    sampler.match_volume = False  # the condition alone, without the volume-matched threshold
    got = [np.mean([m.sum() * cfg.voxel_ml for m in sampler.sample(8, volume_ml=float(v), seed=1)])
           for v in targets]
    assert got[0] < got[1] < got[2]
    assert abs(np.log(got[1] / 0.1)) < np.log(2)


def test_volume_matched_masks_hold_the_requested_volume():
    from nnunet_synth.lesions.maskgan import volume_matched_mask

    grid = np.stack(np.meshgrid(*[np.arange(16.0)] * 3, indexing="ij"))
    radius = np.sqrt(((grid - 7.3) ** 2).sum(0)) + np.random.default_rng(0).uniform(0, 1e-3, (16,) * 3)
    raw = np.tanh(0.4 * (5.0 - radius))  # a GAN-like blob: +1 at its centre, -1 far out
    for voxels in (10, 200, 900):
        mask = volume_matched_mask(raw, voxels)
        assert mask.sum() == voxels and mask[7, 7, 7]  # the blob's own shape, grown or shrunk
    assert volume_matched_mask(raw, 4000).sum() < 4000  # no threshold below -0.9: the output's limit
    assert volume_matched_mask(np.full((4, 4, 4), -1.0), 10).sum() == 0  # no shape: nothing invented
    cfg = MaskGANConfig(box_shape=(16, 16, 8), spacing=(1.0, 1.0, 2.0), **TINY)
    sampler = MaskSampler(MaskGenerator(cfg), LocationPrior(np.full((2, 3), 0.5)), np.log([0.5, 1.0]))
    masks = sampler.sample(3, volume_ml=0.2, seed=0)
    got = [m.sum() * cfg.voxel_ml for m in masks]
    assert all(0.9 * 0.2 <= g <= 0.2 + cfg.voxel_ml for g in got), got  # short only by dropped fragments


def test_sampler_api_returns_bool_boxes_and_rejects_impossible_volumes():
    cfg = MaskGANConfig(box_shape=(16, 16, 8), spacing=(1.0, 1.0, 2.0), **TINY)
    sampler = MaskSampler(MaskGenerator(cfg), LocationPrior(np.full((2, 3), 0.5)), np.log([0.5, 1.0]))
    masks = sampler.sample(3, volume_ml=0.8, seed=0)
    assert len(masks) == 3 and all(m.dtype == bool and m.shape == (16, 16, 8) for m in masks)
    again = sampler.sample(3, volume_ml=0.8, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))  # seeded
    default = sampler.sample_with_volumes(4, seed=3)
    assert len(default[0]) == 4 and default[2] is not None and (default[1] > 0).all()
    with pytest.raises(NNSynthError, match="volume"):
        sampler.sample(1, volume_ml=cfg.box_ml)
    with pytest.raises(NNSynthError):
        sampler.sample(1, volume_ml=-1)


def test_placement_stays_in_parenchyma_and_cuts_outside_brain():
    brain = np.zeros((30, 30, 30), bool)
    brain[5:25, 5:25, 5:25] = True
    parenchyma = brain.copy()
    parenchyma[5:15] = False
    box = np.zeros((8, 8, 8), bool)
    box[2:6, 2:6, 2:6] = True
    placed = place_lesion(box, brain, LocationPrior(np.array([[0.1, 0.5, 0.5]])), 0, parenchyma)
    assert parenchyma[tuple(placed.centre)]
    assert placed.mask.sum() > 0 and not (placed.mask & ~brain).any()
    edge = place_box(box, brain.shape, np.array([0, 0, 0]))
    assert edge.sum() == 8  # only the octant inside the volume survives


def test_lesion_clusters_keep_satellites_and_split_distant_infarcts():
    from nnsynth_gan.maskgan.data import choose_box_shape, crop_to_box, lesion_clusters

    lesion = np.zeros((40, 40, 40), bool)
    lesion[5:10, 5:10, 5:10] = True  # infarct
    lesion[11:13, 5:7, 5:7] = True  # satellite 1 voxel away (2 mm)
    lesion[30:34, 30:34, 30:34] = True  # other territory
    clusters = lesion_clusters(lesion, (2.0, 2.0, 2.0), cluster_mm=10.0)
    assert sorted(int(c.sum()) for c in clusters) == [64, 133]
    assert len(lesion_clusters(lesion, (2.0, 2.0, 2.0), cluster_mm=0.0)) == 3
    box = crop_to_box(np.ones((5, 9, 3), bool), (8, 8, 8))
    assert box.sum() == 5 * 8 * 3 and box[4, 4, 4]

    class R:
        def __init__(self, e):
            self.extent = e
    assert choose_box_shape([R((10, 30, 5)), R((20, 12, 5))], limit=(64, 64, 64)) == (24, 40, 16)
    assert choose_box_shape([R((10, 90, 5))], limit=(64, 48, 64)) == (16, 48, 16)


def test_sample_case_draws_lesion_counts_from_training_cases():
    cfg = MaskGANConfig(box_shape=(8, 8, 8), **TINY)
    prior = LocationPrior(np.array([[0.3, 0.5, 0.5], [0.7, 0.5, 0.5]]))
    sampler = MaskSampler(MaskGenerator(cfg), prior, np.log([0.05, 0.1]), lesions_per_case=[2, 2, 2])
    brain = np.zeros((30, 30, 30), bool)
    brain[3:27, 3:27, 3:27] = True
    case = sampler.sample_case(brain, seed=0)
    assert len(case.boxes) == 2 and len(case.placements) == 2 and case.mask.shape == brain.shape
    assert not (case.mask & ~brain).any() and 0 <= case.inside_brain <= 1
    assert len(sampler.sample_case(brain, seed=0, n_lesions=3, volume_ml=0.05).boxes) == 3
    with pytest.raises(NNSynthError):
        MaskSampler(MaskGenerator(cfg), prior, np.log([0.05]))


def test_checkpoint_round_trip_weights_only(tmp_path: Path):
    cfg = MaskGANConfig(box_shape=(8, 8, 8), **TINY)
    g, d = MaskGenerator(cfg), MaskCritic(cfg)
    opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.9))
    g(torch.randn(2, cfg.latent_dim), torch.zeros(2)).mean().backward()
    opt.step()
    ckpt = GeneratorCheckpoint("maskgan", config_to_dict(cfg), {"generator": g.state_dict(),
                                                                "critic": d.state_dict()},
                               fingerprint().to_dict(), step=7, optimizer_states={"generator": opt.state_dict()},
                               extra={"history": {"step": [1.0]}, "rng_states": [torch.Generator().get_state()],
                                      "location_prior": torch.rand(3, 3), "train_log_volumes": torch.zeros(3)})
    path = save_checkpoint(tmp_path / "maskgan_fold0.pt", ckpt)
    assert [p.name for p in tmp_path.iterdir()] == ["maskgan_fold0.pt"]  # no temporary file left
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == "maskgan" and raw["step"] == 7
    loaded = load_checkpoint(path, kind="maskgan", fingerprint=fingerprint())
    cfg2 = loaded.build_config(MaskGANConfig)
    assert cfg2 == cfg
    g2 = MaskGenerator(cfg2)
    g2.load_state_dict(loaded.state_dicts["generator"])
    for k, v in g.state_dict().items():
        assert torch.equal(v, g2.state_dict()[k])
    opt2 = torch.optim.Adam(g2.parameters())
    opt2.load_state_dict(loaded.optimizer_states["generator"])
    assert opt2.param_groups[0]["betas"] == (0.5, 0.9)
    with pytest.raises(NNSynthError, match="not 'spade'"):
        load_checkpoint(path, kind="spade")
    sampler = MaskSampler.from_checkpoint(path, fingerprint())
    assert sampler.box_shape == (8, 8, 8)


def test_foreign_dataset_is_refused_with_the_field_named(tmp_path: Path):
    cfg = MaskGANConfig(box_shape=(8, 8, 8), **TINY)
    ckpt = GeneratorCheckpoint("maskgan", config_to_dict(cfg), {"generator": MaskGenerator(cfg).state_dict()},
                               fingerprint().to_dict(), extra={"location_prior": torch.rand(2, 3),
                                                               "train_log_volumes": torch.zeros(2)})
    path = save_checkpoint(tmp_path / "maskgan_fold0.pt", ckpt)
    with pytest.raises(NNSynthError) as err:
        MaskSampler.from_checkpoint(path, fingerprint(spacing=(1.0, 1.0, 1.0), channel_names={"0": "ADC"}))
    msg = str(err.value)
    assert "spacing" in msg and "channel_names" in msg and "maskgan_fold0.pt" in msg
    assert "labels" not in msg
    assert fingerprint().differences(fingerprint(spacing=(1.5, 1.5, 1.50000001))) == {}
    # a shrunk copy of the plans (other network and patch, same preprocessed data) still fits
    assert fingerprint().differences(fingerprint(plans_name="nnsynthCPU", patch_size=(16, 16, 16))) == {}


def test_unsafe_or_broken_files_are_refused(tmp_path: Path):
    bad = tmp_path / "maskgan_x.pt"
    torch.save({"kind": "maskgan", "state_dicts": {}, "obj": Path("x")}, bad)
    with pytest.raises(NNSynthError, match="cannot read"):
        load_checkpoint(bad)
    (tmp_path / "trunc.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(NNSynthError):
        load_checkpoint(tmp_path / "trunc.pt")


def test_numpy_values_in_a_checkpoint_still_load_weights_only(tmp_path: Path):
    import numpy as np

    ckpt = GeneratorCheckpoint("maskgan", {"a": np.int64(3)}, {"generator": {}}, fingerprint().to_dict(),
                               extra={"ids": [np.str_("case_1")], "v": np.float64(0.5), "arr": np.arange(3)})
    loaded = load_checkpoint(save_checkpoint(tmp_path / "maskgan_fold0.pt", ckpt))
    assert loaded.extra["ids"] == ["case_1"] and type(loaded.extra["ids"][0]) is str
    assert loaded.extra["v"] == 0.5 and loaded.extra["arr"].tolist() == [0, 1, 2] and loaded.config == {"a": 3}
