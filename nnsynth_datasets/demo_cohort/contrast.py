"""DWI (b = 1000 s/mm^2) and ADC images rendered from tissue fractions, the way a scanner forms them.

Each voxel mixes CSF, grey and white matter compartments with their own T2-weighted signal S0 and
diffusivity D; the b0 and b1000 signals are summed over compartments (partial volume), scaled by a
smooth coil-sensitivity field, blurred by the EPI point-spread function and corrupted by Rician
noise; ADC = ln(b0 / b1000) / b, as scanners compute it. Lesions and look-alikes change S0 and D of
the grey/white-matter compartments only, so they never light up CSF or air. This gives the class
contrasts of real DWI/ADC (CSF dark on DWI and bright on ADC, GM a little brighter than WM on DWI,
infarcts bright on DWI and dark on ADC, T2 shine-through bright on both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnsynth_datasets.demo_cohort.anatomy import Anatomy, SmoothField
from nnsynth_datasets.demo_cohort.lesions import Region

B_VALUE = 1000.0  # s/mm^2
ADC_UNIT = 1e-6  # ADC images are stored in 10^-6 mm^2/s, like the ISLES 2022 ADC maps
ADC_MAX = 4000.0
# Compartments in the order of Anatomy.fractions: CSF, GM, WM. D in 10^-3 mm^2/s, S0 relative.
TISSUE_ADC = np.array([3.0, 0.85, 0.72])
TISSUE_S0 = np.array([2.2, 1.28, 0.95])


@dataclass(frozen=True)
class Contrast:
    """Scanner and subject settings of one acquisition."""

    adc: np.ndarray  # (3,) 10^-3 mm^2/s per compartment
    s0: np.ndarray  # (3,)
    gain: float  # arbitrary scanner units
    snr: float  # white-matter SNR on the b1000 image
    bias_sd: float  # sd of the log coil-sensitivity field
    texture_sd: float  # sd of small-scale tissue heterogeneity

    def facts(self) -> dict:
        return {"tissue_adc_1e-6mm2_s": dict(zip(("csf", "gm", "wm"), np.round(self.adc * 1000, 1).tolist())),
                "tissue_s0": dict(zip(("csf", "gm", "wm"), np.round(self.s0, 3).tolist())),
                "gain": round(self.gain, 1), "snr_wm_b1000": round(self.snr, 1),
                "bias_field_sd": round(self.bias_sd, 3), "texture_sd": round(self.texture_sd, 3)}


@dataclass(frozen=True)
class Scanner:
    """Ranges an acquisition's settings are drawn from: one scanner / protocol of a site."""

    s0_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # CSF, GM, WM S0 relative to the default tissues
    gain: tuple[float, float] = (300.0, 900.0)
    snr: tuple[float, float] = (10.0, 28.0)
    bias_sd: tuple[float, float] = (0.06, 0.18)


# the training scanner, and another site's: other tissue contrast (GM/WM S0), gain, lower SNR, stronger bias
SCANNERS = {"default": Scanner(),
            "scanner-b": Scanner(s0_scale=(0.8, 1.12, 0.9), gain=(1500.0, 2500.0), snr=(6.0, 12.0),
                                 bias_sd=(0.2, 0.35))}


def random_contrast(rng: np.random.Generator, scanner: str = "default") -> Contrast:
    site = SCANNERS[scanner]
    return Contrast(adc=TISSUE_ADC * rng.normal(1.0, 0.04, 3),
                    s0=TISSUE_S0 * np.asarray(site.s0_scale) * rng.normal(1.0, 0.05, 3),
                    gain=float(rng.uniform(*site.gain)), snr=float(rng.uniform(*site.snr)),
                    bias_sd=float(rng.uniform(*site.bias_sd)), texture_sd=float(rng.uniform(0.02, 0.05)))


@dataclass
class TissueChange:
    """Multiplicative change of the GM/WM compartments (S0, D) within a region."""

    region: Region
    adc_factor: float
    s0_factor: float


def _parenchyma_multipliers(shape: tuple[int, ...], changes: list[TissueChange]) -> tuple[np.ndarray, np.ndarray]:
    adc = np.ones(shape, dtype=np.float32)
    s0 = np.ones(shape, dtype=np.float32)
    for change in changes:
        r = change.region
        strength = np.clip(r.weight * r.heterogeneity, 0.0, 1.2)
        adc[r.crop] *= 1.0 + (change.adc_factor - 1.0) * strength
        s0[r.crop] *= 1.0 + (change.s0_factor - 1.0) * strength
    return adc, s0


def _signals(anatomy: Anatomy, contrast: Contrast, changes: list[TissueChange]) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free b0 and b1000 signals (relative units) summed over compartments."""
    f = anatomy.fractions
    adc_mult, s0_mult = _parenchyma_multipliers(f.shape[1:], changes)
    b = np.float32(B_VALUE * 1e-3)  # D is in 10^-3 mm^2/s
    b0 = f[0] * np.float32(contrast.s0[0])
    b1000 = b0 * np.float32(np.exp(-b * contrast.adc[0]))
    for k in (1, 2):
        s0 = f[k] * np.float32(contrast.s0[k]) * s0_mult
        b0 = b0 + s0
        b1000 = b1000 + s0 * np.exp(-b * np.float32(contrast.adc[k]) * adc_mult)
    return b0, b1000


def _coil_and_texture(rng: np.random.Generator, anatomy: Anatomy, contrast: Contrast) -> np.ndarray:
    """Smooth multiplicative field: coil sensitivity (large scale) times tissue texture (small)."""
    axes = anatomy.grid.axes()
    lo = np.array([a[0] for a in axes])
    hi = np.array([a[-1] for a in axes])
    bias = SmoothField.random(rng, lo, hi, step=40.0, sigma=35.0, amplitude=contrast.bias_sd)
    texture = SmoothField.random(rng, lo, hi, step=8.0, sigma=5.0, amplitude=contrast.texture_sd)
    return np.exp(bias.on_grid(axes)[0] + texture.on_grid(axes)[0])


def _rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    real = signal + rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    return np.sqrt(real * real + imag * imag)


def render(rng: np.random.Generator, anatomy: Anatomy, contrast: Contrast, changes: list[TissueChange],
           gain_regions: list[tuple[Region, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(DWI, ADC) float32 images; `gain_regions` scale all signal (susceptibility pile-up)."""
    b0, b1000 = _signals(anatomy, contrast, changes)
    field = _coil_and_texture(rng, anatomy, contrast) * np.float32(contrast.gain)
    for region, gain in gain_regions:
        field[region.crop] *= 1.0 + (gain - 1.0) * region.weight * region.heterogeneity
    psf = 0.5  # voxels: EPI blurring
    b0 = ndimage.gaussian_filter(b0 * field, psf)
    b1000 = ndimage.gaussian_filter(b1000 * field, psf)
    wm_b1000 = contrast.gain * contrast.s0[2] * np.exp(-B_VALUE * 1e-3 * contrast.adc[2])
    sigma = float(wm_b1000 / contrast.snr)
    b0 = _rician(rng, b0, sigma)
    dwi = _rician(rng, b1000, sigma)
    adc = np.log(np.maximum(b0, 1e-3) / np.maximum(dwi, 1e-3)) / (B_VALUE * ADC_UNIT)
    # scanners blank the ADC where the b0 signal is too weak for a fit
    support = ndimage.gaussian_filter(b0, 1.0) > 0.3 * contrast.gain * contrast.s0[2]
    adc = np.where(support, np.clip(adc, 0.0, ADC_MAX), 0.0)
    return dwi.astype(np.float32), adc.astype(np.float32)
