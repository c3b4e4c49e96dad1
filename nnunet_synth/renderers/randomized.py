"""Domain-randomized rendering: every synthetic scan looks like it came from another scanner.

SynthSeg and SynthStroke owe their robustness to unseen scanners to randomizing the rendering rather
than imitating one site. This renderer does that on top of the fitted Gaussian mixture
(``gaussian_mixture``), in nnU-Net's normalized space:

- per case and channel, random class intensities, drawn around the fitted class means with a widened
  spread (``mode="widened"``) or uniformly in a range (``mode="uniform"``, SynthSeg's U(25, 225) of 0-255
  mapped to the normalized scale), and random class sds;
- the lesion keeps the sign of its contrast to the tissue per channel as fitted (acute stroke: DWI bright,
  ADC dark) unless ``keep_lesion_sign`` is off;
- tissue classes split into random smooth sub-regions with their own intensity (texture is not flat);
- partial-volume blur, a penumbra-like fade inside the lesion;
- a multiplicative bias field exp(smooth field, log sd up to ``bias_log_sd``), a gamma exp(N(0, gamma_sd)),
- a thicker slice along a random axis (blur, down- and up-sampling, up to ``max_thickness`` x the spacing),
- Gaussian or Rician noise at a random SNR;
- finally nnU-Net's own z-score over the crop mask, so the case lands where real preprocessed cases are.

Spatial deformation stays nnU-Net's augmentation. Parameters are drawn (``get_parameters``) apart from
where they are applied (``apply``); the ranges are a dataclass recorded in the training log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from nnunet_synth.renderers.gaussian_mixture import GaussianMixtureRenderer, smooth_field

OUTSIDE = -1


@dataclass(frozen=True)
class RandomizationConfig:
    """Ranges of the randomization (defaults after SynthSeg / SynthStroke, scaled to z-scored intensities)."""

    mode: str = "widened"  # "widened": around the fitted means; "uniform": anywhere in mean_range
    widen: float = 3.0  # widened: class means spread by widen x (fitted between-case sd + mean_floor)
    mean_floor: float = 0.3  # normalized units added to every fitted between-case sd before widening
    mean_range: tuple[float, float] = (-2.0, 2.5)  # uniform: class means (SynthSeg's 25..225 of 0..255)
    sd_range: tuple[float, float] = (0.05, 0.35)  # class noise sd (SynthSeg's 5..25 of 0..255)
    keep_lesion_sign: bool = True  # lesion brighter / darker than tissue per channel, as fitted
    lesion_contrast: tuple[float, float] = (0.4, 2.5)  # |lesion - tissue| when its sign is kept, normalized
    subclasses: int = 3  # up to this many smooth sub-regions per tissue class
    subclass_sd: float = 0.2  # intensity spread between sub-regions
    blur_sd: tuple[float, float] = (0.0, 1.0)  # partial-volume blur, voxels
    lesion_fade: float = 0.6  # up to this share of the lesion contrast fades out inside (penumbra)
    bias_log_sd: float = 0.5  # bias field exp(N): log sd drawn in [0, bias_log_sd]
    bias_grid: int = 4
    gamma_sd: float = 0.4  # gamma = exp(N(0, gamma_sd))
    thick_probability: float = 0.5  # share of cases with a thick-slice axis
    max_thickness: float = 3.0  # slice thickness up to this many voxels along one random axis
    snr_range: tuple[float, float] = (8.0, 40.0)  # brain mean / noise sd
    rician_probability: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("widened", "uniform"):
            raise ValueError(f"mode must be 'widened' or 'uniform', got {self.mode!r}")
        for name in ("mean_range", "sd_range", "lesion_contrast", "blur_sd", "snr_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if self.snr_range[0] <= 0 or self.max_thickness < 1 or self.subclasses < 1:
            raise ValueError("snr_range must be positive, max_thickness >= 1 and subclasses >= 1")


@dataclass
class RandomParameters:
    """Everything one rendered case draws (per class and channel means/sds, and the acquisition)."""

    means: dict[int, np.ndarray]  # class -> (C,) mean
    sds: dict[int, np.ndarray]  # class -> (C,) noise sd
    subclass_offsets: dict[int, np.ndarray]  # class -> (n_sub, C)
    blur: float
    fade: float
    bias_log_sd: np.ndarray  # (C,)
    gamma: np.ndarray  # (C,)
    thick_axis: int | None
    thickness: float
    snr: np.ndarray  # (C,)
    rician: bool
    seed: int  # of the fields (sub-regions, bias, noise)


@dataclass
class RandomizedRenderer:
    """The fitted mixture as the anchor of randomized class intensities; ``render(labelmap, rng)``."""

    base: GaussianMixtureRenderer
    lesion_value: int
    tissue_values: tuple[int, ...]  # parenchyma classes: the lesion's contrast sign is taken against them
    config: RandomizationConfig = field(default_factory=RandomizationConfig)

    @classmethod
    def fit(cls, cases: Iterable[tuple[np.ndarray, np.ndarray]], lesion_value: int, tissue_values: tuple[int, ...],
            config: RandomizationConfig | None = None, seed: int = 0) -> RandomizedRenderer:
        return cls(GaussianMixtureRenderer.fit(cases, seed=seed), lesion_value, tuple(tissue_values),
                   config or RandomizationConfig())

    @property
    def num_channels(self) -> int:
        return self.base.num_channels

    def _fitted_mean(self, k: int) -> np.ndarray:
        stats = self.base.classes.get(k)
        return np.asarray(stats.mean if stats else self.base.classes[min(self.base.classes)].mean, float)

    def lesion_sign(self) -> np.ndarray:
        """Per channel +1 (lesion brighter than parenchyma as fitted) or -1."""
        tissue = [self._fitted_mean(k) for k in self.tissue_values if k in self.base.classes]
        ref = np.mean(tissue, axis=0) if tissue else self._fitted_mean(0)
        return np.where(self._fitted_mean(self.lesion_value) >= ref, 1.0, -1.0)

    # ---- drawing ----------------------------------------------------------------------------------
    def get_parameters(self, classes: Iterable[int], rng: np.random.Generator,
                       shape: tuple[int, ...] = (2, 2, 2)) -> RandomParameters:
        """``shape``: the label map's, so that a thick slice is only drawn along an axis longer than 1 voxel."""
        cfg, nc = self.config, self.num_channels
        classes = sorted(int(k) for k in classes if int(k) != OUTSIDE)
        means, sds, subs = {}, {}, {}
        for k in classes:
            if cfg.mode == "uniform" and k != 0:
                means[k] = rng.uniform(*cfg.mean_range, nc)
            else:
                stats = self.base.classes.get(k)
                spread = cfg.widen * (np.asarray(stats.between_sd if stats else np.zeros(nc)) + cfg.mean_floor)
                means[k] = self._fitted_mean(k) + (0 if k == 0 else spread * rng.standard_normal(nc))
            sds[k] = rng.uniform(*cfg.sd_range, nc)
            n_sub = int(rng.integers(1, cfg.subclasses + 1)) if k not in (0, self.lesion_value) else 1
            subs[k] = cfg.subclass_sd * rng.standard_normal((n_sub, nc)) if n_sub > 1 else np.zeros((1, nc))
        if self.lesion_value in means and cfg.keep_lesion_sign:
            tissue = [means[k] for k in self.tissue_values if k in means]
            ref = np.mean(tissue, axis=0) if tissue else means.get(0, np.zeros(nc))
            means[self.lesion_value] = ref + self.lesion_sign() * rng.uniform(*cfg.lesion_contrast, nc)
        long_axes = [a for a, n in enumerate(shape) if n > 1]
        thick = rng.random() < cfg.thick_probability and bool(long_axes)
        return RandomParameters(
            means=means, sds=sds, subclass_offsets=subs, blur=float(rng.uniform(*cfg.blur_sd)),
            fade=float(rng.uniform(0, cfg.lesion_fade)), bias_log_sd=rng.uniform(0, cfg.bias_log_sd, nc),
            gamma=np.exp(rng.normal(0, cfg.gamma_sd, nc)),
            thick_axis=int(long_axes[rng.integers(len(long_axes))]) if thick else None,
            thickness=float(rng.uniform(1, cfg.max_thickness)) if thick else 1.0,
            snr=rng.uniform(*cfg.snr_range, nc), rician=bool(rng.random() < cfg.rician_probability),
            seed=int(rng.integers(2**31)))

    # ---- applying ---------------------------------------------------------------------------------
    def apply(self, labelmap: np.ndarray, p: RandomParameters) -> np.ndarray:
        labelmap = np.asarray(labelmap)
        shape, nc = labelmap.shape, self.num_channels
        rng = np.random.default_rng(p.seed)
        inside = labelmap != OUTSIDE
        region = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 3.0)
        image = np.zeros((nc, *shape), np.float32)
        sd_map = np.zeros((nc, *shape), np.float32)
        for k, mean in p.means.items():
            voxels = labelmap == k
            if not voxels.any():
                continue
            offsets = p.subclass_offsets[k]
            if len(offsets) > 1:  # sub-regions: quantiles of one smooth field inside the class
                edges = np.quantile(region[voxels], np.linspace(0, 1, len(offsets) + 1)[1:-1])
                sub = np.digitize(region[voxels], edges)
                image[:, voxels] = (mean[:, None] + offsets[sub].T).astype(np.float32)
            else:
                image[:, voxels] = mean[:, None]
            sd_map[:, voxels] = p.sds[k][:, None]
        lesion = labelmap == self.lesion_value
        if lesion.any() and p.fade > 0:  # penumbra: the contrast fades towards parts of the lesion
            tissue = [p.means[k] for k in self.tissue_values if k in p.means] or [image[:, ~lesion].mean(1)]
            ref = np.mean(tissue, axis=0)
            fade = p.fade * (0.5 + 0.5 * smooth_field(shape, 4, rng))
            image[:, lesion] -= (image[:, lesion] - ref[:, None]) * fade[lesion][None]
        if p.blur > 0:
            image = np.stack([ndimage.gaussian_filter(ch, p.blur) for ch in image])
        image += sd_map * ndimage.gaussian_filter(rng.standard_normal((nc, *shape)).astype(np.float32),
                                                  (0, 0.5, 0.5, 0.5)) * 2.0
        out = np.empty_like(image)
        for c in range(nc):
            out[c] = self._acquire(image[c], inside, p, c, rng)
        outside_mean = np.asarray(self.base.classes[OUTSIDE].mean if OUTSIDE in self.base.classes
                                  else np.zeros(nc), np.float32)
        out[:, ~inside] = outside_mean[:, None]
        return out

    def _acquire(self, x: np.ndarray, inside: np.ndarray, p: RandomParameters, c: int,
                 rng: np.random.Generator) -> np.ndarray:
        """One channel through a random scanner: intensities to [0, 1], bias, gamma, slices, noise, z-score."""
        lo, hi = np.percentile(x[inside], [0.5, 99.5]) if inside.any() else (x.min(), x.max())
        x = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)
        x = x * np.exp(p.bias_log_sd[c] * smooth_field(x.shape, self.config.bias_grid, rng))
        x = np.clip(x, 0, None) ** p.gamma[c]
        if p.thick_axis is not None and p.thickness > 1.01:
            sigma = [0.0] * 3
            sigma[p.thick_axis] = p.thickness / 2.355  # FWHM = slice thickness
            x = ndimage.gaussian_filter(x, sigma)
            factor = [1.0] * 3
            factor[p.thick_axis] = 1.0 / p.thickness
            low = ndimage.zoom(x, factor, order=1)
            x = ndimage.zoom(low, np.array(x.shape) / np.array(low.shape), order=1)
            x = _fit_shape(x, inside.shape)
        sd = float(x[inside].mean() if inside.any() else x.mean()) / p.snr[c]
        if p.rician:
            x = np.sqrt((x + rng.normal(0, sd, x.shape)) ** 2 + rng.normal(0, sd, x.shape) ** 2)
        else:
            x = x + rng.normal(0, sd, x.shape)
        values = x[inside] if inside.any() else x.ravel()
        return ((x - values.mean()) / max(float(values.std()), 1e-6)).astype(np.float32)

    def render(self, labelmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Image channels (C, *shape) float32 for a label map (-1 outside nnU-Net's crop mask)."""
        labelmap = np.asarray(labelmap)
        if labelmap.ndim == 4:
            labelmap = labelmap[0]
        return self.apply(labelmap, self.get_parameters(np.unique(labelmap), rng, labelmap.shape))

    def describe(self) -> str:
        return f"domain-randomized renderer ({asdict(self.config)})"


def _fit_shape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Crop or edge-pad x to shape (zoom can be off by one voxel)."""
    x = x[tuple(slice(0, s) for s in shape)]
    pads = [(0, s - n) for s, n in zip(shape, x.shape)]
    return np.pad(x, pads, mode="edge") if any(p[1] for p in pads) else x
