"""Training of the label-map -> image translators (pix2pix-3D, SPADE-3D) on one fold of a preprocessed dataset.

pix2pix (the seed paper's setting): least-squares GAN loss (weight 1) + L1 to the real image (weight 10),
one conditional PatchGAN. SPADE: hinge loss + L1 (weight 10) + discriminator feature matching (weight 10,
pix2pixHD/SPADE) with a two-scale PatchGAN. Both: Adam 2e-4, betas (0.5, 0.999), batch 1, annealed
Gaussian noise on the discriminator's image input (the paper's trick against an over-confident D:
linear from ``d_noise`` to 0 over ``d_noise_steps``).

As in the mask-GAN loop, every random draw of a step (case, crop centre, flips, SPADE noise,
discriminator-input noise) comes from one CPU ``torch.Generator`` per rank that is checkpointed, so
``--continue`` reproduces an uninterrupted run bit for bit; under torchrun the gradients are averaged
across ranks each step (``nnsynth_gan.ddp``) and only rank 0 writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnsynth_gan import ddp
from nnsynth_gan.adversarial import AdversarialTrainer, load_resumed, log_main, run_distributed, run_loop, run_paths
from nnsynth_gan.options import TrainOptions as BaseTrainOptions
from nnsynth_gan.plots import plot_losses
from nnsynth_gan.translator.data import TranslatorCase, TranslatorTrainingSet, anatomy_classes, fit_space, load_cases
from nnsynth_gan.translator.report import plot_translations
from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import GeneratorCheckpoint
from nnunet_synth.models.discriminators import MultiScaleDiscriminator
from nnunet_synth.nnunet_io.folds import fold_case_ids, held_out_note
from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
from nnunet_synth.renderers.translator import TranslatorRenderer, TranslatorSpace, translator_classes

HISTORY_KEYS = ("step", "d_loss", "g_loss", "g_adv", "l1", "feature_matching", "d_real", "d_fake")
RESUMED_OPTIONS = ("crop", "batch_size", "lr", "beta1", "beta2", "l1_weight", "fm_weight", "d_noise",
                   "d_noise_steps", "lesion_fraction", "seed", "augment")


@dataclass
class TrainOptions(BaseTrainOptions):
    arch: str = "spade"  # "pix2pix" | "spade"
    steps: int = 5000
    crop: tuple[int, int, int] = (64, 64, 64)
    batch_size: int = 1  # per rank; the paper used 1
    l1_weight: float = 10.0
    fm_weight: float | None = None  # feature matching; default 10 for SPADE, 0 for pix2pix
    d_noise: float = 0.1  # std of the Gaussian noise on D's image input at step 0 (in [-1, 1] units)
    d_noise_steps: int = 1000  # ... annealed linearly to 0 by this step
    lesion_fraction: float = 0.33

    def __post_init__(self) -> None:
        super().__post_init__()
        translator_classes(self.arch)
        self.crop = tuple(int(c) for c in self.crop)
        if not 0 <= self.lesion_fraction <= 1 or self.l1_weight < 0 or self.d_noise < 0:
            raise NNSynthError(f"lesion_fraction must be in [0, 1] and l1_weight, d_noise >= 0, got "
                               f"{self.lesion_fraction}, {self.l1_weight}, {self.d_noise}")
        if self.fm_weight is None:
            self.fm_weight = 10.0 if self.arch == "spade" else 0.0


@dataclass
class TrainResult:
    checkpoint: Path | None  # final checkpoint (rank 0), None on other ranks
    step: int
    generator: nn.Module
    discriminator: MultiScaleDiscriminator
    history: dict[str, list[float]]
    rank_divergence: float


def build_config(opts: TrainOptions, space: TranslatorSpace) -> Any:
    config_cls, _ = translator_classes(opts.arch)
    try:
        config = config_cls(in_channels=space.label_channels, out_channels=space.num_channels, **opts.model)
    except (TypeError, ValueError) as exc:
        raise NNSynthError(f"invalid {opts.arch} settings: {exc}") from exc
    check_crop(opts.crop, config)
    return config


def check_crop(crop: tuple[int, ...], config: Any) -> None:
    """The generator needs multiples of its size factor, the discriminator a minimum size at every scale."""
    factor = config.size_factor
    if any(c % factor for c in crop):
        raise NNSynthError(f"--crop {'x'.join(map(str, crop))} must be a multiple of {factor} per axis "
                           f"(2**levels of the generator)")
    disc = config.discriminator()
    if not disc.accepts(tuple(crop)):
        raise NNSynthError(f"--crop {'x'.join(map(str, crop))} is too small for a discriminator with "
                           f"{len(disc.filters)} stride-2 layers and {disc.n_scales} scale(s) (needs about "
                           f"{disc.min_input_size} voxels per axis): use a larger crop or fewer --disc-filters")


def adversarial_d_loss(kind: str, real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pix: least squares (0.5 * [(D(x)-1)^2 + D(G)^2]); SPADE: hinge; averaged over scales."""
    losses = []
    for r, f in zip(real, fake):
        if kind == "pix2pix":
            losses.append(0.5 * (((r[-1] - 1) ** 2).mean() + (f[-1] ** 2).mean()))
        else:
            losses.append(F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean())
    return torch.stack(losses).mean()


def adversarial_g_loss(kind: str, fake: list[list[torch.Tensor]]) -> torch.Tensor:
    if kind == "pix2pix":
        return torch.stack([((f[-1] - 1) ** 2).mean() for f in fake]).mean()
    return torch.stack([-f[-1].mean() for f in fake]).mean()


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between D's intermediate features of real (detached) and generated pairs, over layers and scales."""
    terms = [F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake) for r, f in zip(rs[:-1], fs[:-1])]
    return torch.stack(terms).mean()


class TranslatorTrainer(AdversarialTrainer):
    """State of one run: models, optimizers, RNG, history; ``step()`` does one D and one G update."""

    history_keys = HISTORY_KEYS
    resumed_options = RESUMED_OPTIONS
    adversary_key = "discriminator"

    def __init__(self, opts: TrainOptions, config: Any, space: TranslatorSpace, data: TranslatorTrainingSet,
                 ctx: ddp.DistContext) -> None:
        self.config, self.space, self.data = config, space, data
        self.kind = opts.arch
        _, gen_cls = translator_classes(self.kind)
        super().__init__(opts, ctx, lambda: gen_cls(config),
                         lambda: MultiScaleDiscriminator(config.discriminator()))

    @property
    def discriminator(self) -> MultiScaleDiscriminator:
        return self.adversary

    def d_noise_std(self) -> float:
        o = self.opts
        if o.d_noise <= 0 or o.d_noise_steps <= 0:
            return 0.0
        return o.d_noise * max(0.0, 1.0 - self.step_count / o.d_noise_steps)

    def _noisy(self, image: torch.Tensor, std: float, noise: torch.Tensor | None) -> torch.Tensor:
        return image if noise is None else image + std * noise

    def step(self) -> None:
        o, G, D, dev = self.opts, self.generator, self.discriminator, self.ctx.device
        label, real, _ = self.data.batch(o.batch_size, self.rng, o.augment)
        z = G.sample_noise(label.shape, self.rng)
        std = self.d_noise_std()
        n_real = torch.randn(real.shape, generator=self.rng) if std > 0 else None
        n_fake = torch.randn(real.shape, generator=self.rng) if std > 0 else None
        label, real = label.to(dev), real.to(dev)
        n_real = None if n_real is None else n_real.to(dev)
        n_fake = None if n_fake is None else n_fake.to(dev)
        fake = G(label, None if z is None else z.to(dev))

        for p in D.parameters():
            p.requires_grad_(True)
        d_real = D(label, self._noisy(real, std, n_real))
        d_fake = D(label, self._noisy(fake.detach(), std, n_fake))
        loss_d = adversarial_d_loss(self.kind, d_real, d_fake)
        self.update(self.opt_d, loss_d, D)

        for p in D.parameters():
            p.requires_grad_(False)
        g_fake = D(label, self._noisy(fake, std, n_fake))
        adv = adversarial_g_loss(self.kind, g_fake)
        l1 = F.l1_loss(fake, real)
        fm = feature_matching(d_real, g_fake) if o.fm_weight > 0 else torch.zeros((), device=dev)
        loss_g = adv + o.l1_weight * l1 + o.fm_weight * fm
        self.update(self.opt_g, loss_g, G)
        for p in D.parameters():
            p.requires_grad_(True)

        self.step_count += 1
        scores_real = torch.stack([r[-1].mean() for r in d_real]).mean()
        scores_fake = torch.stack([f[-1].mean() for f in d_fake]).mean()
        self.record(torch.stack([loss_d, loss_g, adv, l1, fm, scores_real, scores_fake]).detach().cpu())

    def checkpoint(self, fingerprint: dict[str, Any], extra: dict[str, Any]) -> GeneratorCheckpoint:
        return self.snapshot(self.kind, self.config, fingerprint, {**extra, "space": self.space.to_dict()})


def mosaic_cases(cases: list[TranslatorCase], n: int = 2) -> list[TranslatorCase]:
    """Fixed cases for the training mosaics: the one with the largest lesion first, then the first cases."""
    picks = sorted(cases, key=lambda c: -c.lesion.size)[:1]
    picks += [c for c in cases if c not in picks][: max(n - 1, 0)]
    return picks


def _mosaic(trainer: TranslatorTrainer, cases: list[TranslatorCase], path: Path, title: str) -> None:
    """label map | real | generated per channel, full training volumes, fixed seed across checkpoints."""
    renderer = TranslatorRenderer(trainer.kind, trainer.generator, trainer.space, device=trainer.ctx.device)
    rows = []
    for case in cases:
        generated = renderer.render(case.labelmap, np.random.default_rng(0))
        rows.append((case.case_id, case.labelmap, {"real": case.image, trainer.kind: generated}))
    trainer.generator.train()
    plot_translations(rows, path, title, lesion_label=trainer.space.labels.get("lesion"))


def train_translator(opts: TrainOptions) -> TrainResult:
    """Train (or continue) the ``opts.arch`` translator of ``opts.dataset_id`` / ``opts.fold``."""
    return run_distributed(_train, opts)


def _train(opts: TrainOptions, ctx: ddp.DistContext) -> TrainResult:
    fold, kind = str(opts.fold), opts.arch
    pre = open_preprocessed(opts.dataset_id, opts.plans, opts.configuration)
    fingerprint = pre.fingerprint
    final_path, latest_path, plots_dir = run_paths(opts.dataset_id, kind, fold)
    resumed, opts = load_resumed(opts, latest_path, kind, fingerprint, RESUMED_OPTIONS)

    train_ids, val_ids = fold_case_ids(pre, fold)
    if ctx.is_main:  # rank 0 fills the label-map cache, the others then read it
        cases = load_cases(pre, train_ids)
    ddp.barrier(ctx)
    if not ctx.is_main:
        cases = load_cases(pre, train_ids)
    if resumed is not None:
        space = TranslatorSpace(**resumed.extra["space"])
        config = resumed.build_config(translator_classes(kind)[0])
    else:
        space = fit_space(cases, anatomy_classes(pre), seed=opts.seed)
        config = build_config(opts, space)
    check_crop(opts.crop, config)
    data = TranslatorTrainingSet(cases, space, opts.crop, opts.lesion_fraction)
    log_main(ctx, f"{kind} translator {pre.name} fold {fold}: {len(cases)} training cases "
                  f"({len(data.lesion_cases)} with lesions; {held_out_note(train_ids, val_ids)}), crops "
                  f"{'x'.join(map(str, opts.crop))}, {space.label_channels} label channels -> {space.num_channels} "
                  f"image channels; {ctx.world_size} rank(s) on {ctx.device}")

    trainer = TranslatorTrainer(opts, config, space, data, ctx)
    if resumed is not None:
        trainer.restore(resumed)
        log_main(ctx, f"continuing from {latest_path} at step {trainer.step_count}")
    n_gen = sum(p.numel() for p in trainer.generator.parameters())
    n_disc = sum(p.numel() for p in trainer.discriminator.parameters())
    log_main(ctx, f"generator {n_gen / 1e6:.2f} M parameters, discriminator {n_disc / 1e6:.2f} M")
    extra = {"fold": fold, "train_case_ids": [c.case_id for c in cases]}
    shown = mosaic_cases(cases)

    def plot() -> None:
        shown_history = {k: v for k, v in trainer.history.items() if k != "feature_matching" or opts.fm_weight > 0}
        plot_losses(shown_history, plots_dir / "loss.png", f"{kind} {pre.name} fold {fold}")
        _mosaic(trainer, shown, plots_dir / f"samples_step{trainer.step_count:06d}.png",
                f"{kind} fold {fold}, step {trainer.step_count} (training cases, full volume)")

    divergence = run_loop(
        trainer, desc=kind, fingerprint=fingerprint, extra=extra, latest_path=latest_path, final_path=final_path,
        plots_dir=plots_dir, plot=plot, postfix=lambda h: {"D": f"{h['d_loss'][-1]:.3g}", "L1": f"{h['l1'][-1]:.3g}"})
    return TrainResult(final_path if ctx.is_main else None, trainer.step_count, trainer.generator,
                       trainer.discriminator, trainer.history, divergence)
