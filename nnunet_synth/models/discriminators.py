"""Conditional 3D PatchGAN discriminators for the label-map -> image translators.

pix2pix (Isola et al. 2017) judges overlapping patches instead of whole images: a stack of k4 stride-2
convolutions whose output map holds one real/fake score per receptive field. The seed paper used
filters 32/64/128/256/256 (k4 s2, instance norm, LeakyReLU). pix2pixHD/SPADE add a second copy of the
discriminator on a 2x downsampled input (coarse structure) and match its intermediate features
between real and generated images; ``MultiScaleDiscriminator`` with ``n_scales=2`` is that, and with
``n_scales=1`` it is the plain PatchGAN. The condition (one-hot label map) is concatenated to the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PatchDiscriminatorConfig:
    """Architecture of one (multi-scale) PatchGAN; ``in_channels`` = label channels + image channels."""

    in_channels: int
    filters: tuple[int, ...] = (32, 64, 128, 256, 256)
    kernel: int = 4
    n_scales: int = 1

    def __post_init__(self) -> None:
        self.filters = tuple(int(f) for f in self.filters)
        if not self.filters or min(self.filters) < 1 or self.in_channels < 1 or self.n_scales < 1:
            raise ValueError("a discriminator needs in_channels >= 1, at least one filter count and n_scales >= 1")
        if self.kernel < 2:
            raise ValueError("discriminator kernel must be >= 2")

    def score_shapes(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Spatial shape of the last feature map at every scale for an input of ``shape``."""
        pad = (self.kernel - 1) // 2
        out = []
        inp = list(shape)
        for scale in range(self.n_scales):
            if scale:
                inp = [(s - 1) // 2 + 1 for s in inp]  # avg_pool3d(kernel 3, stride 2, padding 1)
            size = inp
            for _ in self.filters:
                size = [(s + 2 * pad - self.kernel) // 2 + 1 for s in size]
            out.append(tuple(size))
        return out

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Every scale keeps >= 1 voxel per axis, and > 1 voxel where instance norm needs statistics."""
        for last in self.score_shapes(shape):
            if min(last) < 1 or (len(self.filters) > 1 and math.prod(last) < 2):
                return False
        return True

    @property
    def min_input_size(self) -> int:
        """Smallest cube edge (voxels) this discriminator accepts."""
        n = 1
        while not self.accepts((n, n, n)):
            n += 1
        return n


class PatchDiscriminator(nn.Module):
    """k4 stride-2 conv stack (instance norm from the second layer, LeakyReLU 0.2) and a k3 score head."""

    def __init__(self, config: PatchDiscriminatorConfig) -> None:
        super().__init__()
        layers = []
        cin = config.in_channels
        pad = (config.kernel - 1) // 2
        for i, cout in enumerate(config.filters):
            block = [nn.Conv3d(cin, cout, config.kernel, stride=2, padding=pad)]
            if i > 0:
                block.append(nn.InstanceNorm3d(cout, affine=True))
            block.append(nn.LeakyReLU(0.2, inplace=True))
            layers.append(nn.Sequential(*block))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.head = nn.Conv3d(cin, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate feature maps (for feature matching) followed by the patch scores."""
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        features.append(self.head(x))
        return features


class MultiScaleDiscriminator(nn.Module):
    """``n_scales`` independent PatchGANs, scale s seeing the input average-pooled s times by 2."""

    def __init__(self, config: PatchDiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(PatchDiscriminator(config) for _ in range(config.n_scales))

    def check_input(self, shape: tuple[int, ...]) -> None:
        if not self.config.accepts(tuple(shape)):
            raise ValueError(f"a discriminator with {len(self.config.filters)} stride-2 layers and "
                             f"{self.config.n_scales} scale(s) cannot score a {tuple(shape)} input (a cube "
                             f"needs >= {self.config.min_input_size} voxels per axis)")

    def forward(self, label: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per scale: [features..., scores] for the pair (one-hot label map, image)."""
        x = torch.cat([label, image], dim=1)
        self.check_input(tuple(x.shape[2:]))
        out = []
        for i, disc in enumerate(self.scales):
            if i:
                x = F.avg_pool3d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(disc(x))
        return out


@dataclass
class TranslatorConfig:
    """What pix2pix and SPADE configs share: label/image channels, the filter ladder and their PatchGAN."""

    in_channels: int  # one-hot label channels (classes + the 'outside' channel)
    out_channels: int  # image channels of the dataset
    base_filters: int = 32
    max_filters: int = 256
    n_levels: int = 4  # inputs must be multiples of 2**n_levels
    disc_filters: tuple[int, ...] = (32, 64, 128, 256)
    disc_scales: int = 1

    def _check(self, name: str, min_levels: int) -> None:
        self.disc_filters = tuple(int(f) for f in self.disc_filters)
        if self.in_channels < 2 or self.out_channels < 1:
            raise ValueError(f"{name} needs >= 2 label channels and >= 1 image channel")
        if self.n_levels < min_levels or self.base_filters < 1 or self.max_filters < self.base_filters:
            raise ValueError(f"n_levels >= {min_levels} and 1 <= base_filters <= max_filters are required")

    @property
    def size_factor(self) -> int:
        """Every spatial size fed to the generator must be a multiple of this."""
        return 2 ** self.n_levels

    def filters(self, level: int) -> int:
        return min(self.base_filters * 2 ** level, self.max_filters)

    def discriminator(self) -> PatchDiscriminatorConfig:
        return PatchDiscriminatorConfig(self.in_channels + self.out_channels, self.disc_filters,
                                        n_scales=self.disc_scales)
