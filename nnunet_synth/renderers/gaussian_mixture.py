"""Training-free Gaussian-mixture renderer: anatomical label map -> image channels.

SynthSeg-style, but with class statistics estimated from the dataset's own real cases in nnU-Net's
normalized space, so rendered cases look like the preprocessed data the network sees:
per class a mean vector (with its between-case spread) and a channel covariance (texture noise),
plus a smooth bias field and light blur for partial-volume edges. It is the baseline peer of the
learned translators (pix2pix, SPADE) and what the synthesis engine uses before any GAN is trained.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

# texture statistics: high-pass residual (image minus its Gaussian smoothing of this width, in voxels),
# measured INTERIOR_MARGIN voxels away from class boundaries when a class has enough such voxels
HIGHPASS_SIGMA = 1.0
INTERIOR_MARGIN = 2
MIN_INTERIOR_VOXELS = 50


@dataclass
class GaussianMixtureConfig:
    """Rendering knobs (intensity statistics themselves are fitted, not configured)."""

    blur_sigma: float = 0.3          # voxels; boundary softness (fitted class means already hold partial volume)
    texture_sigma: float = 0.7       # voxels; spatial correlation of the texture noise
    bias_strength: float = 0.08      # relative amplitude of the multiplicative bias field
    bias_grid: int = 4               # control points per axis of the bias field
    mean_jitter: float = 1.0         # scale of the between-case spread of class means


@dataclass
class ClassStats:
    mean: list[float]                # per channel, average over cases
    between_sd: list[float]          # per channel, spread of the per-case class means
    covariance: list[list[float]]    # channel covariance of voxels around their case mean
    voxels: int = 0


@dataclass
class GaussianMixtureRenderer:
    """Fitted per-class intensity model; JSON-serialisable through to_dict / from_dict."""

    num_channels: int
    classes: dict[int, ClassStats] = field(default_factory=dict)
    config: GaussianMixtureConfig = field(default_factory=GaussianMixtureConfig)

    @classmethod
    def fit(cls, cases: Iterable[tuple[np.ndarray, np.ndarray]],
            config: GaussianMixtureConfig | None = None, max_voxels_per_class: int = 20000,
            seed: int = 0) -> GaussianMixtureRenderer:
        """cases: (image (C, *spatial) float, label map (*spatial) or (1, *spatial) int) pairs."""
        rng = np.random.default_rng(seed)
        per_class_means: dict[int, list[np.ndarray]] = {}
        per_class_resid: dict[int, list[np.ndarray]] = {}
        num_channels = None
        for image, labelmap in cases:
            image = np.asarray(image, dtype=np.float32)
            labelmap = np.asarray(labelmap).reshape(image.shape[1:])
            num_channels = image.shape[0]
            flat_img = image.reshape(num_channels, -1)
            flat_lab = labelmap.reshape(-1)
            # texture = high-pass residual, so smooth variation (bias, partial volume at edges, anatomy) is not
            # counted as voxel noise: the renderer adds its own bias field and boundary blur
            highpass = np.stack([ch - ndimage.gaussian_filter(ch, HIGHPASS_SIGMA) for ch in image])
            flat_hp = highpass.reshape(num_channels, -1) / _highpass_gain(labelmap.ndim)
            # -1 (outside nnU-Net's crop mask) is fitted like a class: it holds whatever the
            # normalization left there, and rendered cases must match it.
            for k in np.unique(flat_lab):
                in_class = labelmap == k
                idx = np.flatnonzero(in_class)
                # noise only from voxels whose smoothing neighbourhood lies inside the class (no edge response)
                interior = np.flatnonzero(ndimage.binary_erosion(in_class, iterations=INTERIOR_MARGIN))
                noise_idx = interior if interior.size >= MIN_INTERIOR_VOXELS else idx
                if idx.size > max_voxels_per_class:
                    idx = rng.choice(idx, max_voxels_per_class, replace=False)
                if noise_idx.size > max_voxels_per_class:
                    noise_idx = rng.choice(noise_idx, max_voxels_per_class, replace=False)
                per_class_means.setdefault(int(k), []).append(flat_img[:, idx].mean(axis=1))
                per_class_resid.setdefault(int(k), []).append(flat_hp[:, noise_idx])
        if num_channels is None:
            raise ValueError("GaussianMixtureRenderer.fit needs at least one case")
        classes = {}
        for k, means in per_class_means.items():
            means_arr = np.stack(means)
            resid = np.concatenate(per_class_resid[k], axis=1)
            cov = np.atleast_2d(np.cov(resid)) if resid.shape[1] > 1 else np.zeros((num_channels,) * 2)
            classes[k] = ClassStats(mean=means_arr.mean(0).tolist(),
                                    between_sd=(means_arr.std(0) if len(means) > 1
                                                else np.zeros(num_channels)).tolist(),
                                    covariance=cov.tolist(), voxels=int(resid.shape[1]))
        return cls(num_channels=num_channels, classes=classes, config=config or GaussianMixtureConfig())

    def render(self, labelmap: np.ndarray, rng: np.random.Generator,
               outside: np.ndarray | None = None) -> np.ndarray:
        """Image (C, *spatial) float32 for a label map; voxels in `outside` are set to 0.

        Classes the renderer never saw fall back to the background statistics.
        """
        cfg = self.config
        labelmap = np.asarray(labelmap)
        shape = labelmap.shape
        fallback = self.classes.get(0) or next(iter(self.classes.values()))
        present = np.unique(labelmap)
        # per-class lookup tables: case-specific means (fitted mean + between-case jitter) and noise factors
        index = np.searchsorted(present, labelmap)
        means = np.empty((len(present), self.num_channels), np.float32)
        chols = np.empty((len(present), self.num_channels, self.num_channels), np.float32)
        for i, k in enumerate(present):
            stats = self.classes.get(int(k), fallback)
            jitter = cfg.mean_jitter * np.asarray(stats.between_sd) * rng.standard_normal(self.num_channels)
            means[i] = np.asarray(stats.mean) + jitter
            chols[i] = _safe_cholesky(np.asarray(stats.covariance, dtype=np.float64))
        image = np.moveaxis(means[index], -1, 0)
        if cfg.blur_sigma > 0:
            # blurring the piecewise-constant mean image = blending class means at boundaries (partial volume)
            image = np.stack([ndimage.gaussian_filter(ch, cfg.blur_sigma) for ch in image])
        white = rng.standard_normal((*shape, self.num_channels), dtype=np.float32)
        texture = np.moveaxis(np.einsum("...ij,...j->...i", chols[index], white), -1, 0)
        if cfg.texture_sigma > 0:
            # smoothing shrinks the noise variance; rescale to keep the fitted within-class spread
            gain = _smoothing_gain(cfg.texture_sigma, len(shape))
            texture = np.stack([ndimage.gaussian_filter(ch, cfg.texture_sigma) * gain for ch in texture])
        image = image + texture
        if cfg.bias_strength > 0:
            background = np.asarray(fallback.mean, np.float32).reshape(-1, *([1] * len(shape)))
            bias = 1.0 + cfg.bias_strength * smooth_field(shape, cfg.bias_grid, rng)
            image = background + (image - background) * bias[None]
        if outside is not None:
            image[:, outside] = 0.0
        return image

    def to_dict(self) -> dict:
        return {"num_channels": self.num_channels, "config": asdict(self.config),
                "classes": {str(k): asdict(v) for k, v in self.classes.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> GaussianMixtureRenderer:
        return cls(num_channels=int(d["num_channels"]), config=GaussianMixtureConfig(**d["config"]),
                   classes={int(k): ClassStats(**v) for k, v in d["classes"].items()})


def _safe_cholesky(cov: np.ndarray) -> np.ndarray:
    """Cholesky factor of a covariance that may be singular (constant channels, few voxels)."""
    cov = (cov + cov.T) / 2
    w, v = np.linalg.eigh(cov)
    return v @ np.diag(np.sqrt(np.clip(w, 0, None)))


@functools.lru_cache(maxsize=4)
def _highpass_gain(ndim: int) -> float:
    """std of unit white noise after removing its Gaussian-smoothed version (so residuals can be rescaled)."""
    probe = np.random.default_rng(0).standard_normal((32,) * ndim)
    residual = probe - ndimage.gaussian_filter(probe, HIGHPASS_SIGMA)
    return float(residual[(slice(4, -4),) * ndim].std())


@functools.lru_cache(maxsize=16)
def _smoothing_gain(sigma: float, ndim: int) -> float:
    """1 / std of unit white noise after a Gaussian filter of width sigma (ndim dimensions)."""
    probe = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal((32,) * ndim), sigma)
    return float(1.0 / probe[(slice(4, -4),) * ndim].std())


def smooth_field(shape: tuple[int, ...], grid: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [-1, 1]: a coarse random grid spread out by separable Gaussian kernels.

    Separable (one small matrix per axis) so that it costs a few ms at 100^3, where a cubic zoom took 0.3 s.
    """
    coarse = rng.uniform(-1, 1, (grid,) * len(shape))
    field_ = coarse
    for axis, size in enumerate(shape):
        pos = (np.arange(size) + 0.5) / size * grid - 0.5
        weights = np.exp(-0.5 * ((pos[:, None] - np.arange(grid)[None]) / 0.75) ** 2)
        weights /= weights.sum(1, keepdims=True)
        field_ = np.moveaxis(np.tensordot(weights, np.moveaxis(field_, axis, 0), axes=(1, 0)), 0, axis)
    peak = np.abs(field_).max()
    return (field_ / peak if peak > 0 else field_).astype(np.float32)
