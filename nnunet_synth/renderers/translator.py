"""Learned label-map -> image renderers (pix2pix-3D, SPADE-3D) behind the synthesis engine's interface.

``TranslatorRenderer.render(labelmap, rng)`` takes an anatomical label map on nnU-Net's preprocessed
grid (any size, -1 outside nnU-Net's crop mask) and returns the image channels (C, *shape) float32 in
nnU-Net's normalized intensity space, exactly like ``GaussianMixtureRenderer.render``.

``TranslatorSpace`` is the data side that both training and rendering share, stored in the checkpoint
(``extra["space"]``): how label values become one-hot channels (channel 0 is the 'outside' region,
channel k + 1 is class k) and how nnU-Net's normalized intensities map to the generators' tanh range
(per channel ``[low, high]`` -> [-1, 1], clipped, as the paper rescaled to [-1, 1]). Where nnU-Net
writes a constant outside the crop mask (z-score with ``use_mask_for_norm``: 0), rendered volumes get
that constant there too instead of whatever the network makes of the outside channel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import GeneratorCheckpoint, load_checkpoint
from nnunet_synth.models.pix2pix3d import Pix2PixConfig, Pix2PixGenerator
from nnunet_synth.models.spade3d import SPADEConfig, SPADEGenerator
from nnunet_synth.nnunet_io.fingerprint import DatasetFingerprint

TRANSLATOR_KINDS = ("pix2pix", "spade")
OUTSIDE = -1  # nnU-Net's label for voxels outside the crop (nonzero) mask


@dataclass
class TranslatorSpace:
    """Label encoding and intensity mapping of one dataset (fitted on the training cases)."""

    labels: dict[str, int]  # anatomical label names -> values (dataset.json "anatomical_labels")
    low: list[float]  # per channel, nnU-Net-normalized intensity mapped to -1
    high: list[float]  # per channel, mapped to +1
    outside_value: list[float] | None = None  # constant written outside the crop mask, when nnU-Net has one

    def __post_init__(self) -> None:
        self.labels = {str(k): int(v) for k, v in self.labels.items()}
        self.low = [float(v) for v in self.low]
        self.high = [float(v) for v in self.high]
        if self.outside_value is not None:
            self.outside_value = [float(v) for v in self.outside_value]
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError("low and high need one entry per image channel")
        if any(h <= lo for lo, h in zip(self.low, self.high)):
            raise ValueError(f"every channel needs high > low, got low={self.low} high={self.high}")
        if min(self.labels.values()) < 0:
            raise ValueError("anatomical label values must be >= 0 (-1 is nnU-Net's outside region)")

    @property
    def num_classes(self) -> int:
        return max(self.labels.values()) + 1

    @property
    def label_channels(self) -> int:
        return self.num_classes + 1

    @property
    def num_channels(self) -> int:
        return len(self.low)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _affine(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1) + (1,) * (like.dim() - 2)
        low = torch.tensor(self.low, dtype=like.dtype, device=like.device).view(shape)
        high = torch.tensor(self.high, dtype=like.dtype, device=like.device).view(shape)
        return (high + low) / 2, (high - low) / 2

    def to_unit(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, *S) normalized intensities -> [-1, 1] (clipped)."""
        centre, half = self._affine(image)
        return ((image - centre) / half).clamp(-1, 1)

    def from_unit(self, unit: torch.Tensor) -> torch.Tensor:
        centre, half = self._affine(unit)
        return unit * half + centre

    def encode(self, labelmap: torch.Tensor) -> torch.Tensor:
        """(N, *S) integer label map with -1 outside -> (N, num_classes + 1, *S) float one-hot."""
        labelmap = labelmap.long()
        lo, hi = int(labelmap.min()), int(labelmap.max())
        if lo < OUTSIDE or hi >= self.num_classes:
            raise NNSynthError(f"label map holds values {lo}..{hi}; this translator knows -1 (outside) and "
                               f"0..{self.num_classes - 1} ({self.labels})")
        onehot = F.one_hot(labelmap + 1, self.label_channels)
        return onehot.movedim(-1, 1).float()


def translator_classes(kind: str) -> tuple[type, type[nn.Module]]:
    """(config dataclass, generator class) of a translator kind."""
    if kind == "pix2pix":
        return Pix2PixConfig, Pix2PixGenerator
    if kind == "spade":
        return SPADEConfig, SPADEGenerator
    raise NNSynthError(f"unknown translator kind {kind!r} (expected one of {', '.join(TRANSLATOR_KINDS)})")


def generator_from_checkpoint(ckpt: GeneratorCheckpoint) -> nn.Module:
    config_cls, gen_cls = translator_classes(ckpt.kind)
    generator = gen_cls(ckpt.build_config(config_cls))
    generator.load_state_dict(ckpt.state_dicts["generator"])
    return generator


def pad_amounts(shape: tuple[int, ...], factor: int) -> list[tuple[int, int]]:
    """(before, after) per axis to reach the next multiple of ``factor`` (split evenly, so context is symmetric)."""
    out = []
    for s in shape:
        total = -s % factor
        out.append((total // 2, total - total // 2))
    return out


class TranslatorRenderer:
    """A trained translator as a renderer: ``render(labelmap, rng) -> (C, *shape) float32``."""

    def __init__(self, kind: str, generator: nn.Module, space: TranslatorSpace,
                 fingerprint: DatasetFingerprint | None = None, device: str | torch.device = "cpu") -> None:
        translator_classes(kind)
        self.kind = kind
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.space = space
        self.fingerprint = fingerprint
        self.num_channels = space.num_channels

    @classmethod
    def from_checkpoint(cls, path: str | Path, fingerprint: DatasetFingerprint | None = None,
                        device: str | torch.device = "cpu", kind: str | None = None) -> TranslatorRenderer:
        """Load a pix2pix or SPADE checkpoint; with ``fingerprint``, refuse one trained for another dataset."""
        ckpt = load_checkpoint(path, kind=kind, fingerprint=fingerprint)
        if ckpt.kind not in TRANSLATOR_KINDS:
            raise NNSynthError(f"checkpoint {path} holds a {ckpt.kind!r} generator, not a translator "
                               f"({' or '.join(TRANSLATOR_KINDS)})")
        if "space" not in ckpt.extra:
            raise NNSynthError(f"checkpoint {path} lacks the translator's intensity space (extra['space'])")
        return cls(ckpt.kind, generator_from_checkpoint(ckpt), TranslatorSpace(**ckpt.extra["space"]),
                   ckpt.dataset_fingerprint(), device)

    @torch.no_grad()
    def render(self, labelmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Image channels for one label map ((X, Y, Z) or (1, X, Y, Z), -1 outside); same rng state, same image."""
        lm = np.asarray(labelmap)
        if lm.ndim == 4 and lm.shape[0] == 1:
            lm = lm[0]
        if lm.ndim != 3:
            raise NNSynthError(f"label map must be 3D (X, Y, Z), got shape {np.asarray(labelmap).shape}")
        shape = lm.shape
        pads = pad_amounts(shape, self.generator.size_factor)
        lm = np.pad(lm.astype(np.int64), pads, constant_values=OUTSIDE)
        label = self.space.encode(torch.from_numpy(lm)[None]).to(self.device)
        seed = int(rng.integers(0, 2**63 - 1))
        noise = self.generator.sample_noise(label.shape, torch.Generator().manual_seed(seed))
        unit = self.generator(label, None if noise is None else noise.to(self.device))
        image = self.space.from_unit(unit.float())[0]
        crop = tuple(slice(b, b + s) for (b, _), s in zip(pads, shape))
        image = image[(slice(None), *crop)].cpu().numpy().astype(np.float32)
        if self.space.outside_value is not None:
            outside = np.asarray(labelmap).reshape(shape) == OUTSIDE
            image[:, outside] = np.asarray(self.space.outside_value, np.float32)[:, None]
        return image
