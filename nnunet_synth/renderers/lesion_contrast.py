"""Appearance model A of lesion inpainting: the fold's real lesion contrast, written into a real host scan.

Nothing is trained. From the fold's real lesions, in nnU-Net's normalized space and per channel, it keeps

- the **core contrast** of every lesion: median intensity of the lesion's inner voxels minus the median of
  the parenchyma around it (a distribution over lesions, one vector per lesion so that channels stay
  paired, e.g. DWI bright with ADC dark);
- the **edge profile**: the contrast at each signed distance from the lesion's edge (outside -2, -1 voxels
  for the partial volume, inside 1, 2, 3+) relative to the core, pooled over the lesions;
- the **internal heterogeneity**: the lesion's own spread beyond the spread of the tissue around it.

``apply`` adds ``contrast * profile(signed distance)`` to the host image, plus a smooth random texture
scaled by the heterogeneity inside the lesion. It adds to the host's intensities rather than replacing
them, so the host's texture, noise and bias survive inside the new lesion and no seam can appear: the
change fades to exactly 0 at 2.5 voxels outside the lesion (and the inpainting engine keeps the voxels
outside nnU-Net's crop mask untouched). Random parameters are drawn apart from where
they are applied (``get_parameters`` / ``apply``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import cc3d
import numpy as np
from scipy import ndimage

from nnunet_synth.errors import NNSynthError

# signed distances (voxels) at which the profile is fitted: negative outside the lesion, positive inside
PROFILE_DISTANCES = (-2, -1, 1, 2, 3)
RING = (3, 6)  # the reference tissue: parenchyma 3 to 6 voxels outside the lesion


Sampling = tuple[float, ...] | None  # voxel side per axis over the finest side (None: isotropic)


def voxel_sampling(spacing: tuple[float, ...] | None) -> Sampling:
    """Each axis's voxel side in units of the finest one: distances then count the finest voxels, so a lesion's
    edge on a thick-slice grid (1.5 x 1.5 x 5 mm) fades over the same millimetres along every axis."""
    if spacing is None:
        return None
    spacing = np.asarray(spacing, float)
    if spacing.size == 0 or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise NNSynthError(f"the grid spacing must be positive and finite, got {tuple(spacing.tolist())}")
    return tuple(float(v) for v in spacing / spacing.min())


def signed_distance(mask: np.ndarray, sampling: Sampling = None) -> np.ndarray:
    """Distance from the edge (in finest voxels): >= 1 inside (1 = edge voxel), <= -1 outside (-1 = touching)."""
    if sampling is not None and len(sampling) != mask.ndim:
        raise NNSynthError(f"sampling {sampling} does not match a {mask.ndim}-D mask")
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    return np.where(mask, inside, -outside).astype(np.float32)


def _profile_bins(sdist: np.ndarray) -> list[np.ndarray]:
    """Masks of the voxels nearest each PROFILE_DISTANCES value (the last inside bin takes the core)."""
    bins = []
    for d in PROFILE_DISTANCES:
        if d < 0:
            bins.append((sdist <= d + 0.5) & (sdist > d - 0.5))
        elif d < PROFILE_DISTANCES[-1]:
            bins.append((sdist >= d - 0.5) & (sdist < d + 0.5))
        else:
            bins.append(sdist >= d - 0.5)
    return bins


@dataclass
class LesionMeasurement:
    """One real lesion component: its core contrast, contrast per profile bin and internal spread, per channel."""

    core: np.ndarray  # (C,)
    by_distance: np.ndarray  # (C, len(PROFILE_DISTANCES)), NaN where the bin is empty
    lesion_sd: np.ndarray  # (C,) sd of the lesion's voxels around their profile
    tissue_sd: np.ndarray  # (C,) sd of the reference ring
    voxels: int
    edge_gradient: np.ndarray  # (C,) mean intensity gradient magnitude (per voxel) on the edge's two sides


def measure_lesion(image: np.ndarray, component: np.ndarray, all_lesions: np.ndarray,
                   parenchyma: np.ndarray, sampling: Sampling = None) -> LesionMeasurement | None:
    """Contrast of one lesion component against the parenchyma around it (None when no tissue is around).

    ``sampling`` (see :func:`voxel_sampling`): distances and gradients count finest voxels."""
    idx = np.argwhere(component)
    lo, hi = np.maximum(idx.min(0) - RING[1] - 2, 0), np.minimum(idx.max(0) + RING[1] + 3, component.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    image, component, all_lesions, parenchyma = image[(slice(None), *box)], component[box], all_lesions[box], \
        parenchyma[box]
    sdist = signed_distance(component, sampling)
    ring = (sdist <= -RING[0]) & (sdist >= -RING[1]) & parenchyma & ~all_lesions
    if ring.sum() < 10:
        return None
    ref = np.median(image[:, ring], axis=1)
    inner = component & (sdist >= 2) if (component & (sdist >= 2)).sum() >= 3 else component
    core = np.median(image[:, inner], axis=1) - ref
    by_distance = np.full((image.shape[0], len(PROFILE_DISTANCES)), np.nan)
    for j, sel in enumerate(_profile_bins(sdist)):
        sel = sel & ~(all_lesions & ~component) & (parenchyma | component)
        if sel.sum() >= 3:
            by_distance[:, j] = np.median(image[:, sel], axis=1) - ref
    lesion_sd = np.std(image[:, component] - np.median(image[:, component], axis=1, keepdims=True), axis=1)
    edge = (np.abs(sdist) <= 1.5) & (parenchyma | component)
    axes = tuple(a for a in range(component.ndim) if component.shape[a] > 1)  # a 2D case has a length-1 axis
    steps = [1.0 if sampling is None else sampling[a] for a in axes]  # per finest voxel along every axis
    gradient = np.stack([np.sqrt(sum(g ** 2 for g in _as_list(np.gradient(image[c], *steps, axis=axes))))
                         if axes else np.zeros(component.shape) for c in range(image.shape[0])])
    return LesionMeasurement(core=core, by_distance=by_distance, lesion_sd=lesion_sd,
                             tissue_sd=np.std(image[:, ring], axis=1), voxels=int(component.sum()),
                             edge_gradient=gradient[:, edge].mean(axis=1))


def _as_list(gradients) -> list[np.ndarray]:
    """np.gradient returns one array for one axis and a tuple for several."""
    return list(gradients) if isinstance(gradients, (list, tuple)) else [gradients]


@dataclass
class PaintParameters:
    """What one painted lesion gets: its core contrast per channel and the seed of its texture."""

    contrast: np.ndarray  # (C,)
    texture_seed: int
    source_lesion: int  # index of the fitted lesion whose contrast was drawn


@dataclass
class LesionContrastModel:
    """Core contrasts of the fold's real lesions, their edge profile and heterogeneity (per channel)."""

    contrasts: np.ndarray  # (N, C) core contrast of each fitted lesion
    profile: np.ndarray  # (C, len(PROFILE_DISTANCES)) contrast relative to the core at each signed distance
    texture_sd: np.ndarray  # (C,) lesion spread beyond the tissue's, relative to |core contrast|
    jitter: float = 0.15  # log-normal spread of a drawn contrast around the fitted lesion's
    sampling: Sampling = None  # the grid's voxel sides over the finest (profile distances count finest voxels)

    def __post_init__(self) -> None:
        self.sampling = None if self.sampling is None else tuple(float(v) for v in self.sampling)
        self.contrasts = np.asarray(self.contrasts, np.float32).reshape(-1, np.asarray(self.profile).shape[0])
        self.profile = np.asarray(self.profile, np.float32)
        self.texture_sd = np.asarray(self.texture_sd, np.float32)
        if len(self.contrasts) == 0:
            raise NNSynthError("no real lesion with tissue around it to fit the lesion contrast on")
        if not (np.isfinite(self.contrasts).all() and np.isfinite(self.profile).all()
                and np.isfinite(self.texture_sd).all()):
            raise NNSynthError("the fitted lesion contrast is not finite: are the training images valid?")

    @property
    def num_channels(self) -> int:
        return self.contrasts.shape[1]

    @classmethod
    def fit(cls, cases: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], min_voxels: int = 4,
            jitter: float = 0.15, sampling: Sampling = None) -> LesionContrastModel:
        """From (image (C, *S), lesion mask, parenchyma mask) of the fold's training cases on one grid
        (``sampling``: its voxel sides over the finest, :func:`voxel_sampling`)."""
        found: list[LesionMeasurement] = []
        for image, lesion, parenchyma in cases:
            lesion = np.asarray(lesion, bool)
            if not lesion.any():
                continue
            labels = cc3d.connected_components(lesion.astype(np.uint8), connectivity=26)
            for label_id in range(1, int(labels.max()) + 1):
                component = labels == label_id
                if component.sum() < min_voxels:
                    continue
                m = measure_lesion(np.asarray(image, np.float32), component, lesion, np.asarray(parenchyma, bool),
                                   sampling)
                if m is not None:
                    found.append(m)
        if not found:
            raise NNSynthError("none of the fold's training cases has a lesion of at least "
                               f"{min_voxels} voxels with parenchyma around it to fit the lesion contrast on")
        contrasts = np.stack([m.core for m in found])
        weights = np.array([m.voxels for m in found], float)
        n_channels = contrasts.shape[1]
        profile = np.ones((n_channels, len(PROFILE_DISTANCES)), np.float32)
        for c in range(n_channels):
            for j, d in enumerate(PROFILE_DISTANCES):
                ratios, w = [], []
                for m, weight in zip(found, weights):
                    if abs(m.core[c]) > 0.25 and np.isfinite(m.by_distance[c, j]):
                        ratios.append(m.by_distance[c, j] / m.core[c])
                        w.append(weight)
                if ratios:
                    profile[c, j] = float(np.clip(np.average(ratios, weights=w), 0.0, 1.5))
                else:  # no lesion with a clear contrast: a plain soft edge
                    profile[c, j] = {-2: 0.0, -1: 0.3}.get(d, 1.0)
        extra = np.stack([np.sqrt(np.maximum(m.lesion_sd ** 2 - m.tissue_sd ** 2, 0.0)) for m in found])
        scale = np.maximum(np.abs(contrasts), 0.25)
        texture_sd = np.average(extra / scale, axis=0, weights=weights)
        return cls(contrasts=contrasts, profile=profile, texture_sd=np.minimum(texture_sd, 1.0), jitter=jitter,
                   sampling=sampling)

    # ---- drawing and applying --------------------------------------------------------------------
    def get_parameters(self, rng: np.random.Generator) -> PaintParameters:
        i = int(rng.integers(len(self.contrasts)))
        contrast = self.contrasts[i] * np.exp(rng.normal(0.0, self.jitter))
        return PaintParameters(contrast=contrast.astype(np.float32), texture_seed=int(rng.integers(2**31)),
                               source_lesion=i)

    def weight(self, sdist: np.ndarray) -> np.ndarray:
        """(C, *S) share of the core contrast at each voxel, from the signed distance (0 beyond 2 voxels out)."""
        xs = np.array((-2.5, *PROFILE_DISTANCES), np.float32)
        out = np.empty((self.num_channels, *sdist.shape), np.float32)
        for c in range(self.num_channels):
            out[c] = np.interp(sdist, xs, np.concatenate([[0.0], self.profile[c]]), left=0.0,
                               right=self.profile[c, -1])
        return out

    def apply(self, image: np.ndarray, lesion: np.ndarray, params: PaintParameters,
              margin: int = 4) -> np.ndarray:
        """The host image with the lesion added (a new array; voxels beyond the soft edge are unchanged)."""
        out = np.array(image, np.float32, copy=True)
        if not lesion.any():
            return out
        lo = np.maximum(np.argwhere(lesion).min(0) - margin, 0)
        hi = np.minimum(np.argwhere(lesion).max(0) + margin + 1, lesion.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub = lesion[box]
        sdist = signed_distance(sub, self.sampling)
        weight = self.weight(sdist)
        sigma = 1.0 if self.sampling is None else tuple(1.0 / v for v in self.sampling)  # 1 finest voxel
        texture = ndimage.gaussian_filter(np.random.default_rng(params.texture_seed).standard_normal(sub.shape)
                                          .astype(np.float32), sigma)
        texture /= max(float(texture.std()), 1e-6)
        inside = np.clip(sdist, 0, 2) / 2  # the texture fades in from the edge
        for c in range(self.num_channels):
            amp = float(self.texture_sd[c] * abs(params.contrast[c]))
            out[c][box] += params.contrast[c] * weight[c] + amp * texture * inside
        return out

    def paint(self, image: np.ndarray, labelmap: np.ndarray, lesion: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        """The engine's painter interface (the label map is not needed: the contrast is the host's own)."""
        return self.apply(image, lesion, self.get_parameters(rng))

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v for k, v in asdict(self).items()}

    def describe(self) -> str:
        med = np.median(self.contrasts, axis=0)
        return (f"lesion contrast fitted on {len(self.contrasts)} real lesions (median core contrast "
                f"{', '.join(f'{v:+.2f}' for v in med)} per channel)")
