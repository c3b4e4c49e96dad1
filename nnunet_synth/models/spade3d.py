"""SPADE-3D: a generator whose normalization layers are modulated by the label map at every scale.

Park et al. 2019 (GauGAN), as the seed paper's second translator: the label map is not fed through an
encoder (where instance norm would wash out uniform label regions) but enters every normalization
layer, which predicts a per-voxel scale and shift from it (``SPADE``). The generator starts at
``1 / 2**n_levels`` of the output size from a spatial Gaussian noise tensor (the source of variety
between samples of one label map) concatenated with the down-sampled label map, then alternates SPADE
residual blocks and 2x up-sampling. Label maps are down-sampled by average pooling, so small structures
(lacunes) survive as partial class fractions instead of vanishing as with nearest-neighbour resizing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_synth.models.discriminators import TranslatorConfig


@dataclass
class SPADEConfig(TranslatorConfig):
    """SPADE generator + two-scale PatchGAN; stored in every SPADE checkpoint."""

    # base_filters at full resolution, doubled per level up to max_filters (CPU: keep >= 16, see below);
    # n_levels: 2x up-sampling steps
    noise_dim: int = 16  # channels of the bottleneck noise (0: deterministic generator)
    spade_hidden: int = 32  # channels of the label-map embedding shared by the SPADE layers of a scale
    # PyTorch's CPU convolutions fall back from oneDNN to a ~3x slower path below 16 input channels
    # the paper's PatchGAN filters less the last layer, so the half-resolution scale still fits a 64^3 crop
    disc_filters: tuple[int, ...] = (32, 64, 128, 256)
    disc_scales: int = 2

    def __post_init__(self) -> None:
        self._check("SPADE", min_levels=0)
        if self.noise_dim < 0 or self.spade_hidden < 1:
            raise ValueError("noise_dim >= 0 and spade_hidden >= 1 are required")


class SPADE(nn.Module):
    """Parameter-free instance norm, then ``x * (1 + gamma) + beta`` with per-voxel gamma, beta from the label."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm3d(channels, affine=False)
        self.gamma_beta = nn.Conv3d(hidden, 2 * channels, 3, padding=1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma_beta(embedding).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """[SPADE, LReLU, conv3] x 2 with a (SPADE, 1x1 conv) shortcut when the channel count changes."""

    def __init__(self, cin: int, cout: int, hidden: int) -> None:
        super().__init__()
        mid = min(cin, cout)
        self.norm0 = SPADE(cin, hidden)
        self.conv0 = nn.Conv3d(cin, mid, 3, padding=1)
        self.norm1 = SPADE(mid, hidden)
        self.conv1 = nn.Conv3d(mid, cout, 3, padding=1)
        self.learned_shortcut = cin != cout
        if self.learned_shortcut:
            self.norm_s = SPADE(cin, hidden)
            self.conv_s = nn.Conv3d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, embedding)) if self.learned_shortcut else x
        dx = self.conv0(F.leaky_relu(self.norm0(x, embedding), 0.2))
        dx = self.conv1(F.leaky_relu(self.norm1(dx, embedding), 0.2))
        return shortcut + dx


class SPADEGenerator(nn.Module):
    """noise + coarse label map -> conv3 -> [SPADE res block, 2x up] * n_levels -> res block -> conv3 -> tanh.

    SPADE's shared label MLP (conv3 + ReLU on the label map) is computed once per scale and used by every
    SPADE layer of that scale, each of which keeps its own gamma/beta convolution. That is 1 instead of
    2-3 label convolutions per scale: those read the few one-hot channels, which PyTorch's CPU backend
    runs on its slow (non-oneDNN) path, and they dominated the generator's cost at full resolution.
    """

    def __init__(self, config: SPADEConfig) -> None:
        super().__init__()
        self.config = config
        n = config.n_levels
        self.head = nn.Conv3d(config.in_channels + config.noise_dim, config.filters(n), 3, padding=1)
        self.embed = nn.ModuleList(
            nn.Sequential(nn.Conv3d(config.in_channels, config.spade_hidden, 3, padding=1), nn.ReLU())
            for _ in range(n + 1))  # index = level (0: full resolution)
        self.blocks = nn.ModuleList(
            SPADEResBlock(config.filters(level), config.filters(max(level - 1, 0)), config.spade_hidden)
            for level in range(n, -1, -1))
        self.out = nn.Conv3d(config.filters(0), config.out_channels, 3, padding=1)

    @property
    def size_factor(self) -> int:
        return self.config.size_factor

    def sample_noise(self, label_shape: torch.Size | tuple[int, ...], generator: torch.Generator
                     ) -> torch.Tensor | None:
        """Standard normal bottleneck noise (CPU, from ``generator``) for a label batch of ``label_shape``."""
        if self.config.noise_dim == 0:
            return None
        spatial = [s // self.size_factor for s in label_shape[2:]]
        return torch.randn(label_shape[0], self.config.noise_dim, *spatial, generator=generator)

    def forward(self, label: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """(N, in_channels, *S) one-hot label map (+ noise) -> (N, out_channels, *S) image in [-1, 1].

        Without ``noise`` the noise input is zero (the mean sample).
        """
        if any(s % self.size_factor for s in label.shape[2:]):
            raise ValueError(f"spatial size {tuple(label.shape[2:])} is not a multiple of {self.size_factor}")
        pyramid = [label]
        for _ in range(self.config.n_levels):
            pyramid.append(F.avg_pool3d(pyramid[-1], 2))
        x = pyramid[-1]
        if self.config.noise_dim:
            if noise is None:
                noise = x.new_zeros((x.shape[0], self.config.noise_dim, *x.shape[2:]))
            x = torch.cat([x, noise.to(x)], dim=1)
        x = self.head(x)
        for i, block in enumerate(self.blocks):
            level = self.config.n_levels - i
            x = block(x, self.embed[level](pyramid[level]))
            if i < self.config.n_levels:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.out(F.leaky_relu(x, 0.2)))
