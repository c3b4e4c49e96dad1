"""pix2pix-3D: U-Net generator from a one-hot anatomical label map to all image channels.

The seed paper's first translator (Isola et al. 2017, as used by Platscher et al. 2022): an encoder of
k4 stride-2 convolutions (instance norm, LeakyReLU 0.2), a mirrored decoder (ReLU, 2x up-sampling,
instance norm) with skip connections at every level, and a tanh output in the [-1, 1] intensity
space of ``TranslatorSpace``. It is deterministic for a given label map (pix2pix's only noise is
dropout, off by default), so its variety comes from the label maps alone. The discriminator settings
live in the same config so that one checkpoint ``config`` describes the whole GAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nnunet_synth.models.discriminators import TranslatorConfig

UPSAMPLING = ("transpose", "trilinear")


@dataclass
class Pix2PixConfig(TranslatorConfig):
    """U-Net generator + conditional PatchGAN; stored in every pix2pix checkpoint."""

    n_levels: int = 4  # stride-2 levels
    dropout: float = 0.0
    upsampling: str = "transpose"  # pix2pix's k4 s2 transposed conv, or trilinear + k3 conv (no checkerboard)
    disc_filters: tuple[int, ...] = (32, 64, 128, 256, 256)  # the paper's PatchGAN
    disc_scales: int = 1

    def __post_init__(self) -> None:
        self._check("pix2pix", min_levels=1)
        if self.upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {self.upsampling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def _up(cin: int, cout: int, mode: str) -> nn.Module:
    if mode == "transpose":
        return nn.ConvTranspose3d(cin, cout, 4, stride=2, padding=1)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                         nn.Conv3d(cin, cout, 3, padding=1))


class Pix2PixGenerator(nn.Module):
    """U-Net: down_i = [LReLU, conv k4 s2, IN] (no norm on the first/innermost), up_i mirrors it with skips."""

    def __init__(self, config: Pix2PixConfig) -> None:
        super().__init__()
        self.config = config
        n = config.n_levels
        self.down = nn.ModuleList()
        cin = config.in_channels
        for level in range(n):
            cout = config.filters(level)
            block: list[nn.Module] = [] if level == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            block.append(nn.Conv3d(cin, cout, 4, stride=2, padding=1))
            if 0 < level < n - 1:
                block.append(nn.InstanceNorm3d(cout, affine=True))
            self.down.append(nn.Sequential(*block))
            cin = cout
        self.up = nn.ModuleList()
        for level in reversed(range(n)):
            # input: innermost features, or the previous up output concatenated with the skip
            cin = config.filters(level) if level == n - 1 else 2 * config.filters(level)
            if level == 0:
                block = [nn.ReLU(), _up(cin, config.out_channels, config.upsampling), nn.Tanh()]
            else:
                cout = config.filters(level - 1)
                block = [nn.ReLU(), _up(cin, cout, config.upsampling), nn.InstanceNorm3d(cout, affine=True)]
                if config.dropout > 0 and level >= n - 3:  # pix2pix: dropout in the three innermost up blocks
                    block.append(nn.Dropout(config.dropout))
            self.up.append(nn.Sequential(*block))

    @property
    def size_factor(self) -> int:
        return self.config.size_factor

    def forward(self, label: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """(N, in_channels, *S) one-hot label map -> (N, out_channels, *S) image in [-1, 1]."""
        del noise  # interface parity with SPADE; pix2pix is deterministic
        if any(s % self.size_factor for s in label.shape[2:]):
            raise ValueError(f"spatial size {tuple(label.shape[2:])} is not a multiple of {self.size_factor}")
        skips = []
        x = label
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()  # the innermost output is x itself
        for i, block in enumerate(self.up):
            if i:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x)
        return x

    def sample_noise(self, label_shape: torch.Size | tuple[int, ...], generator: torch.Generator
                     ) -> torch.Tensor | None:
        """pix2pix takes no noise input."""
        return None
