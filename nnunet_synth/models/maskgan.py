"""3D WGAN-GP generator and critic for binary lesion masks, conditioned on lesion volume.

Follows the seed paper's mask GAN (Platscher et al. 2022): latent -> dense -> low-resolution tensor,
blocks of [conv3, instance norm, 2x upsample, LeakyReLU] halving the filters, conv k7, tanh; critic of
stride-2 k5 convolutions from 8 filters doubling, dense 512 -> 1. Two additions:

* **Volume conditioning.** The condition is the normalized log lesion volume
  ``c = (log(ml) - logvol_mean) / logvol_std``. The generator embeds ``c``, concatenates the
  embedding to the latent and injects it in every block through conditional instance norm
  (per-channel scale and shift predicted from the embedding). The critic sees ``c`` through a
  projection term ``<embed(c), h>`` (Miyato & Koyama 2018), so it can judge whether a mask's size fits
  the condition.
* **Any box shape.** The generator works on ``gen_shape`` (``box_shape`` rounded up to a multiple of
  ``2**n_levels``) and centre-crops to ``box_shape``, as the paper generated 128^3 and cropped to
  128x128x32. The critic's stride-2 convolutions accept any shape.

Masks live in [-1, 1] (background -1, lesion +1); ``> 0`` binarizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MaskGANConfig:
    """Architecture and data-space settings; stored in every mask-GAN checkpoint."""

    box_shape: tuple[int, int, int] = (32, 32, 32)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # mm, of the preprocessed dataset
    latent_dim: int = 128
    n_levels: int = 3  # 2x up-sampling blocks in G (and stride-2 convs in D)
    gen_base_filters: int = 128
    gen_min_filters: int = 8
    final_kernel: int = 7
    cond_embed_dim: int = 32
    critic_base_filters: int = 8
    critic_max_filters: int = 256
    critic_dense: int = 512
    logvol_mean: float = 0.0  # statistics of log(ml) over the training masks
    logvol_std: float = 1.0

    def __post_init__(self) -> None:
        self.box_shape = tuple(int(s) for s in self.box_shape)
        self.spacing = tuple(float(s) for s in self.spacing)
        if len(self.box_shape) != 3 or min(self.box_shape) < 1:
            raise ValueError(f"box_shape must be three positive sizes, got {self.box_shape}")
        if len(self.spacing) != 3:
            raise ValueError(f"spacing must have three entries, got {self.spacing}")
        if self.n_levels < 1 or self.final_kernel % 2 == 0 or self.logvol_std <= 0:
            raise ValueError("n_levels >= 1, an odd final_kernel and logvol_std > 0 are required")

    @property
    def gen_shape(self) -> tuple[int, int, int]:
        f = 2 ** self.n_levels
        return tuple(math.ceil(s / f) * f for s in self.box_shape)

    @property
    def base_shape(self) -> tuple[int, int, int]:
        return tuple(s // 2 ** self.n_levels for s in self.gen_shape)

    @property
    def voxel_ml(self) -> float:
        return math.prod(self.spacing) / 1000.0

    @property
    def box_ml(self) -> float:
        return math.prod(self.box_shape) * self.voxel_ml

    def condition(self, volume_ml: torch.Tensor) -> torch.Tensor:
        """Normalized log volume, the network's condition input."""
        return (torch.log(volume_ml) - self.logvol_mean) / self.logvol_std

    def gen_filters(self, level: int) -> int:
        return max(self.gen_base_filters // 2 ** level, self.gen_min_filters)


def _cond_mlp(out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(1, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_dim))


class ConditionalInstanceNorm3d(nn.Module):
    """Instance norm whose scale and shift come from the condition embedding."""

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm3d(channels, affine=False)
        self.affine = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(emb).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma[..., None, None, None]) + beta[..., None, None, None]


class _UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, embed_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = ConditionalInstanceNorm3d(cout, embed_dim)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.act(self.up(self.norm(self.conv(x), emb)))


class MaskGenerator(nn.Module):
    """(z, c) -> mask box in [-1, 1] of shape (B, 1, *box_shape)."""

    def __init__(self, config: MaskGANConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embed = _cond_mlp(c.cond_embed_dim, c.cond_embed_dim)
        self.dense = nn.Linear(c.latent_dim + c.cond_embed_dim, c.gen_filters(0) * math.prod(c.base_shape))
        self.blocks = nn.ModuleList(
            _UpBlock(c.gen_filters(i), c.gen_filters(i + 1), c.cond_embed_dim) for i in range(c.n_levels))
        self.out = nn.Conv3d(c.gen_filters(c.n_levels), 1, c.final_kernel, padding=c.final_kernel // 2)
        # Start at the typical lesion size instead of a half-full box: bias so that (tanh(b) + 1) / 2 equals
        # the mean training volume's share of the box (as a focal-loss prior init). Saves hundreds of steps.
        share = min(max(math.exp(c.logvol_mean) / c.box_ml, 1e-4), 0.5)
        nn.init.constant_(self.out.bias, math.atanh(2 * share - 1))

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = self.config
        emb = self.embed(cond.reshape(-1, 1).to(z.dtype))
        x = self.dense(torch.cat([z, emb], dim=1)).view(z.shape[0], c.gen_filters(0), *c.base_shape)
        for block in self.blocks:
            x = block(x, emb)
        x = torch.tanh(self.out(x))
        return _center_crop(x, c.box_shape)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents drawn on the CPU so that a seed gives the same masks on every device."""
        return torch.randn(n, self.config.latent_dim, generator=generator)


class MaskCritic(nn.Module):
    """(mask, c) -> Wasserstein critic score (B,). No normalization layers, as WGAN-GP requires."""

    def __init__(self, config: MaskGANConfig) -> None:
        super().__init__()
        c = config
        layers: list[nn.Module] = []
        cin, shape = 1, list(c.box_shape)
        for i in range(c.n_levels):
            cout = min(c.critic_base_filters * 2 ** i, c.critic_max_filters)
            layers += [nn.Conv3d(cin, cout, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]
            cin, shape = cout, [(s - 1) // 2 + 1 for s in shape]
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(cin * math.prod(shape), c.critic_dense),
                                   nn.LeakyReLU(0.2))
        self.out = nn.Linear(c.critic_dense, 1)
        self.embed = _cond_mlp(c.critic_dense, c.cond_embed_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.dense(self.features(x))
        proj = (self.embed(cond.reshape(-1, 1).to(h.dtype)) * h).sum(dim=1)
        return self.out(h).squeeze(1) + proj


def _center_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(shape):
        return x
    slices = [slice(None), slice(None)]
    for have, want in zip(x.shape[2:], shape):
        start = (have - want) // 2
        slices.append(slice(start, start + want))
    return x[tuple(slices)]


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP term mean((||grad D(x_hat)|| - 1)^2) on random interpolates (Gulrajani et al. 2017)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, 1, generator=generator).to(real.device, real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score = critic(x_hat, cond)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def binarized_volume_ml(masks: torch.Tensor, config: MaskGANConfig) -> torch.Tensor:
    """Volume of the binarized mask (x > 0) in the forward pass, gradient of the soft volume (straight-through).

    A soft volume alone can be met by a faint haze over the whole box (0.005 per voxel of a 48x56x32 box
    is already 3 ml) while the binarized mask stays empty; the straight-through estimate measures what
    the sampler returns and still tells every voxel which way to go.
    """
    soft = (masks + 1) / 2
    hard = (masks > 0).to(masks.dtype)
    return (hard + soft - soft.detach()).flatten(1).sum(dim=1) * config.voxel_ml
