"""WGAN-GP training of the volume-conditioned lesion-mask GAN on one fold of a preprocessed dataset.

Critic: ``D(fake) - D(real) + 10 * GP`` (Gulrajani et al. 2017), ``n_critic`` updates per generator
update. Generator: ``-D(G(z, c))`` plus ``volume_weight * |log V(G(z, c)) - log V_c|`` with V the
binarized volume (straight-through gradient, see ``binarized_volume_ml``); the
adversarial term learns shape, the volume term makes the condition bite from the first steps instead of
waiting for the critic to discover it (this is the "beyond the paper" part). Adam 2e-4, betas
(0.5, 0.9) as in WGAN-GP (the paper used beta1 0.5).

Everything random in a step (case draws, flips, latents, GP interpolation) comes from one CPU
``torch.Generator`` per rank whose state is checkpointed, so ``--continue`` reproduces an
uninterrupted run bit for bit (same weights, optimizer moments, step and RNG). Only rank 0 writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnsynth_gan import ddp
from nnsynth_gan.adversarial import AdversarialTrainer, load_resumed, log_main, run_distributed, run_loop, run_paths
from nnsynth_gan.maskgan.data import (
    CLUSTER_MM,
    MIN_LESION_VOXELS,
    MaskTrainingSet,
    choose_box_shape,
    load_lesion_records,
)
from nnsynth_gan.options import TrainOptions as BaseTrainOptions
from nnsynth_gan.plots import plot_losses, plot_mask_mosaic
from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import GeneratorCheckpoint
from nnunet_synth.lesions.maskgan import log_volume_stats
from nnunet_synth.models.maskgan import MaskCritic, MaskGANConfig, MaskGenerator, binarized_volume_ml, gradient_penalty
from nnunet_synth.nnunet_io.folds import fold_case_ids, held_out_note
from nnunet_synth.nnunet_io.preprocessed import open_preprocessed

HISTORY_KEYS = ("step", "critic_loss", "generator_loss", "wasserstein", "gradient_penalty", "volume_log_error")
# Hyper-parameters that define the optimization; on --continue they come from the checkpoint.
RESUMED_OPTIONS = ("batch_size", "n_critic", "lr", "beta1", "beta2", "gp_weight", "volume_weight", "seed",
                   "augment", "min_voxels", "cluster_mm")


@dataclass
class TrainOptions(BaseTrainOptions):
    steps: int = 2000
    batch_size: int = 4  # per rank
    beta2: float = 0.9  # WGAN-GP
    n_critic: int = 5
    gp_weight: float = 10.0
    volume_weight: float = 1.0
    min_voxels: int = MIN_LESION_VOXELS
    cluster_mm: float = CLUSTER_MM  # lesion components closer than this form one training lesion
    box: tuple[int, int, int] | None = None  # None: sized from the training lesions


@dataclass
class TrainResult:
    checkpoint: Path | None  # final checkpoint (rank 0), None on other ranks
    step: int
    generator: MaskGenerator
    critic: MaskCritic
    history: dict[str, list[float]]
    rank_divergence: float


def build_config(opts: TrainOptions, data: MaskTrainingSet, spacing: tuple[float, ...]) -> MaskGANConfig:
    mean, std = log_volume_stats(data.volumes_ml.numpy())
    try:
        return MaskGANConfig(box_shape=data.box_shape, spacing=spacing, logvol_mean=mean, logvol_std=std,
                             **opts.model)
    except (TypeError, ValueError) as exc:
        raise NNSynthError(f"invalid mask-GAN settings: {exc}") from exc


class MaskGANTrainer(AdversarialTrainer):
    """State of one run: models, optimizers, RNG, history; ``step()`` does one generator update."""

    history_keys = HISTORY_KEYS
    resumed_options = RESUMED_OPTIONS
    adversary_key = "critic"
    generator: MaskGenerator

    def __init__(self, opts: TrainOptions, config: MaskGANConfig, data: MaskTrainingSet,
                 ctx: ddp.DistContext) -> None:
        self.config, self.data = config, data
        super().__init__(opts, ctx, lambda: MaskGenerator(config), lambda: MaskCritic(config))

    @property
    def critic(self) -> MaskCritic:
        return self.adversary

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        real, vol = self.data.batch(self.opts.batch_size, self.rng, self.opts.augment)
        z = self.generator.sample_latent(len(vol), self.rng)
        dev = self.ctx.device
        return real.to(dev), vol.to(dev), z.to(dev)

    def step(self) -> None:
        o, cfg, G, D = self.opts, self.config, self.generator, self.critic
        for p in D.parameters():
            p.requires_grad_(True)
        for _ in range(o.n_critic):
            real, vol, z = self._batch()
            cond = cfg.condition(vol)
            with torch.no_grad():
                fake = G(z, cond)
            d_real, d_fake = D(real, cond).mean(), D(fake, cond).mean()
            gp = gradient_penalty(D, real, fake, cond, self.rng)
            loss_d = d_fake - d_real + o.gp_weight * gp
            self.update(self.opt_d, loss_d, D)
        for p in D.parameters():
            p.requires_grad_(False)
        _, vol, z = self._batch()
        cond = cfg.condition(vol)
        fake = G(z, cond)
        adv = -D(fake, cond).mean()
        # log(V + one voxel): an empty mask is a large but finite error
        vol_err = (torch.log(binarized_volume_ml(fake, cfg) + cfg.voxel_ml) - torch.log(vol)).abs().mean()
        loss_g = adv + o.volume_weight * vol_err
        self.update(self.opt_g, loss_g, G)
        self.step_count += 1
        self.record(torch.stack([loss_d.detach(), loss_g.detach(), (d_real - d_fake).detach(), gp.detach(),
                                 vol_err.detach()]).cpu())

    def checkpoint(self, fingerprint: dict[str, Any], extra: dict[str, Any]) -> GeneratorCheckpoint:
        return self.snapshot("maskgan", self.config, fingerprint, extra)


def _mosaic(trainer: MaskGANTrainer, path: Path, fold: str) -> None:
    """Real boxes vs generated boxes at the training volume quantiles (fixed latents across checkpoints)."""
    data, cfg = trainer.data, trainer.config
    order = np.argsort(data.volumes_ml.numpy())
    picks = order[np.linspace(0, len(order) - 1, min(8, len(order))).round().astype(int)]
    real = [data.masks[i, 0].numpy() > 0 for i in picks]
    real_cap = [f"{data.volumes_ml[i]:.2g} ml" for i in picks]
    volumes = data.volumes_ml[torch.as_tensor(picks)].float()
    rows = [("real", real, real_cap)]
    trainer.generator.eval()
    with torch.no_grad():
        for seed in (1, 2):
            z = trainer.generator.sample_latent(len(volumes), torch.Generator().manual_seed(seed))
            out = trainer.generator(z.to(trainer.ctx.device), cfg.condition(volumes).to(trainer.ctx.device))
            masks = [m > 0 for m in out[:, 0].cpu().numpy()]
            caps = [f"{v:.2g}->{m.sum() * cfg.voxel_ml:.2g}" for v, m in zip(volumes.tolist(), masks)]
            rows.append((f"generated {seed}", masks, caps))
    trainer.generator.train()
    plot_mask_mosaic(rows, path, f"mask GAN fold {fold}, step {trainer.step_count} "
                                 "(max projection; generated: requested->obtained ml)")


def train_maskgan(opts: TrainOptions) -> TrainResult:
    """Train (or continue) the mask GAN of ``opts.dataset_id`` / ``opts.fold``; returns the final state."""
    return run_distributed(_train, opts)


def _train(opts: TrainOptions, ctx: ddp.DistContext) -> TrainResult:
    fold = str(opts.fold)
    pre = open_preprocessed(opts.dataset_id, opts.plans, opts.configuration)
    fingerprint = pre.fingerprint
    final_path, latest_path, plots_dir = run_paths(opts.dataset_id, "maskgan", fold)
    resumed, opts = load_resumed(opts, latest_path, "maskgan", fingerprint, RESUMED_OPTIONS)

    train_ids, val_ids = fold_case_ids(pre, fold)
    records = load_lesion_records(pre, train_ids, opts.cluster_mm)
    if not records:
        raise NNSynthError(f"no lesions in the {len(train_ids)} training cases of fold {fold}")
    if resumed is not None:
        box = resumed.build_config(MaskGANConfig).box_shape
    else:
        levels = int(opts.model.get("n_levels", MaskGANConfig.n_levels))
        box = opts.box or choose_box_shape(records, pre.configuration_manager.patch_size, multiple=2 ** levels)
    data = MaskTrainingSet(records, box, fingerprint.voxel_volume_ml, opts.min_voxels)
    config = resumed.build_config(MaskGANConfig) if resumed is not None else \
        build_config(opts, data, pre.spacing)
    log_main(ctx, f"mask GAN {pre.name} fold {fold}: {len(data)} lesions from {len(data.lesions_per_case)} of "
                  f"{len(train_ids)} training cases ({held_out_note(train_ids, val_ids)}, {data.skipped} lesions "
                  f"< {opts.min_voxels} voxels skipped); box {config.box_shape} at {config.spacing} mm keeps "
                  f"{100 * data.coverage:.1f}% of lesion voxels; {ctx.world_size} rank(s) on {ctx.device}")

    trainer = MaskGANTrainer(opts, config, data, ctx)
    if resumed is not None:
        trainer.restore(resumed)
        log_main(ctx, f"continuing from {latest_path} at step {trainer.step_count}")
    extra = {
        "fold": fold,
        "train_case_ids": [r.case_id for r in data.records],
        "location_prior": torch.as_tensor(data.centres, dtype=torch.float64),
        "train_log_volumes": torch.log(data.volumes_ml.double()),
        "box_coverage": float(data.coverage),
        "lesions_per_case": list(data.lesions_per_case),
        "cluster_mm": float(opts.cluster_mm),
    }

    def plot() -> None:
        plot_losses(trainer.history, plots_dir / "loss.png", f"mask GAN {pre.name} fold {fold}")
        _mosaic(trainer, plots_dir / f"samples_step{trainer.step_count:06d}.png", fold)

    divergence = run_loop(
        trainer, desc="mask GAN", fingerprint=fingerprint, extra=extra, latest_path=latest_path,
        final_path=final_path, plots_dir=plots_dir, plot=plot,
        postfix=lambda h: {"W": f"{h['wasserstein'][-1]:.3g}", "vol": f"{h['volume_log_error'][-1]:.3g}"})
    return TrainResult(final_path if ctx.is_main else None, trainer.step_count, trainer.generator,
                       trainer.critic, trainer.history, divergence)
