"""Label maps estimated from an image: brain mask, then a 3-class Gaussian mixture (CSF, grey, white matter).

The brain mask comes from a threshold + morphology; the mixture runs on the brain intensities of one
channel, and which component is which tissue follows from the channel's contrast. Posteriors are
smoothed a little so noise does not speckle the map. The lesion voxels of labelsTr become the lesion class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_synth.errors import NNSynthError
from nnunet_synth.synthesis.anatomy import DEFAULT_ANATOMICAL_LABELS as ANATOMICAL_LABELS

TISSUES = ("csf", "gray_matter", "white_matter")
# Tissues by increasing mean intensity for each contrast.
CONTRAST_ORDER = {
    "t1": ("csf", "gray_matter", "white_matter"),
    "flair": ("csf", "white_matter", "gray_matter"),
    "t2": ("white_matter", "gray_matter", "csf"),
    "dwi": ("csf", "white_matter", "gray_matter"),
    "adc": ("white_matter", "gray_matter", "csf"),
}
# Best GM/WM contrast first; DWI last (the GM/WM difference is a few percent, below its bias field).
CHANNEL_PREFERENCE = ("t1", "flair", "t2", "adc", "dwi")
_CONTRAST_PATTERNS = (("flair", r"flair"), ("t1", r"t1"), ("t2", r"t2"), ("adc", r"adc|md\b|diffusivity"),
                      ("dwi", r"dwi|trace|b1000|diffusion"))


def guess_contrast(channel_name: str) -> str | None:
    name = channel_name.lower()
    for contrast, pattern in _CONTRAST_PATTERNS:
        if re.search(pattern, name):
            return contrast
    return None


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Head/brain support: threshold, opened, largest component, closed, holes filled.

    Skull-stripped images and fitted maps (ADC) have a blank background: everything above it counts.
    Otherwise Otsu's threshold on the whole image (bright outliers clipped) separates air from tissue.
    Filling holes brings back ventricles that are dark in the channel (CSF on T1, DWI, FLAIR).
    """
    from skimage.filters import threshold_otsu

    floor = float(image.min())
    above = image[image > floor]
    if above.size < 16:
        return np.zeros(image.shape, bool)
    if np.mean(image <= floor) > 0.05:
        mask = image > floor
    else:
        clipped = np.minimum(image, np.percentile(above, 99.5))
        mask = clipped > threshold_otsu(clipped)
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    mask = ndimage.binary_closing(mask, iterations=2, border_value=0) | mask
    mask = ndimage.binary_fill_holes(mask)
    for axis in range(3):  # slice-wise too: sulci open to the outside in 3D but closed in a slice
        mask = np.stack([ndimage.binary_fill_holes(s) for s in np.moveaxis(mask, axis, 0)], axis=axis)
    return mask


@dataclass(frozen=True)
class GaussianMixture1D:
    """A 1D Gaussian mixture fitted by EM (numpy only: scikit-learn would add a 2 s import per worker)."""

    means: np.ndarray
    variances: np.ndarray
    weights: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, means: np.ndarray, weights: np.ndarray, iterations: int = 300,
            tol: float = 1e-5) -> GaussianMixture1D:
        """EM from the given means and weights; stops when the mean log-likelihood gains < tol."""
        floor = 1e-6 * float(np.var(values)) + 1e-12
        model = cls(np.asarray(means, float), np.full(len(means), float(np.var(values)) / len(means) + floor),
                    np.asarray(weights, float) / np.sum(weights))
        previous = -np.inf
        for _ in range(iterations):
            log_joint = model._log_joint(values)  # (components, voxels)
            top = log_joint.max(axis=0)
            log_norm = top + np.log(np.exp(log_joint - top).sum(axis=0))
            resp = np.exp(log_joint - log_norm)
            mass = resp.sum(axis=1) + 1e-12
            mu = resp @ values / mass
            var = np.einsum("kn,kn->k", resp, (values - mu[:, None]) ** 2) / mass + floor
            model = cls(mu, var, mass / mass.sum())
            likelihood = float(log_norm.mean())
            if likelihood - previous < tol:
                break
            previous = likelihood
        return model

    def _log_joint(self, values: np.ndarray) -> np.ndarray:
        diff = values[None, :] - self.means[:, None]
        return ((np.log(self.weights) - 0.5 * np.log(2 * np.pi * self.variances))[:, None]
                - 0.5 * diff * diff / self.variances[:, None])

    def predict(self, values: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
        return np.concatenate([np.argmax(self._log_joint(values[i:i + chunk]), axis=0)
                               for i in range(0, max(len(values), 1), chunk)])


def _smooth_inside(image: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that averages only over ``mask`` (no dark background bleeding in)."""
    if sigma <= 0:
        return image
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    return ndimage.gaussian_filter(np.where(mask, image, 0).astype(np.float32), sigma) / np.maximum(weight, 1e-3)


def tissue_classes(image: np.ndarray, brain: np.ndarray, contrast: str, exclude: np.ndarray | None = None,
                   smooth_voxels: float = 0.7, seed: int = 0, max_samples: int = 200_000) -> dict[str, np.ndarray]:
    """Boolean maps of csf / gray_matter / white_matter inside ``brain`` (3-component 1D GMM).

    The image is smoothed a little inside the brain first (noise blurs the GM/WM boundary more
    than smoothing does). CSF is a small class at the bright or dark end of every contrast, so the
    mixture starts with CSF at the extreme and GM/WM at the 30th and 70th percentiles: started
    evenly, EM tends to let a broad "CSF" component swallow the GM tail.
    """
    fit_mask = brain & ~exclude if exclude is not None else brain
    x = _smooth_inside(image.astype(np.float32), brain, smooth_voxels)
    values = x[fit_mask].astype(np.float64)
    if values.size < 30:
        raise NNSynthError("too few brain voxels for a tissue mixture")
    rng = np.random.default_rng(seed)
    sample = values if values.size <= max_samples else rng.choice(values, max_samples, replace=False)
    order = CONTRAST_ORDER[contrast]
    csf_first = order[0] == "csf"
    percentiles, weights = ([2, 30, 70], [0.1, 0.45, 0.45]) if csf_first else ([30, 70, 98], [0.45, 0.45, 0.1])
    gmm = GaussianMixture1D.fit(sample, np.percentile(sample, percentiles), np.array(weights))
    winner = np.full(image.shape, -1)
    winner[brain] = gmm.predict(x[brain].astype(np.float64))
    ranked = np.argsort(gmm.means)
    return {tissue: winner == ranked[rank] for rank, tissue in enumerate(order)}


def estimate_labelmap(image: np.ndarray, lesion: np.ndarray | None, contrast: str, labels: dict[str, int],
                      brain: np.ndarray | None = None, smooth_voxels: float = 0.7) -> np.ndarray:
    """uint8 label map: tissues from the GMM inside the brain mask, lesion voxels on top."""
    missing = [n for n in (*TISSUES, "lesion", "background") if n not in labels]
    if missing:
        raise NNSynthError(f"anatomical_labels lacks {', '.join(missing)}; estimation needs "
                           f"{', '.join(ANATOMICAL_LABELS)}")
    lesion = lesion.astype(bool) if lesion is not None else None
    brain = brain_mask(image) if brain is None else brain
    if lesion is not None:
        brain = brain | lesion
    out = np.full(image.shape, labels["background"], np.uint8)
    for tissue, where in tissue_classes(image, brain, contrast, lesion, smooth_voxels).items():
        out[where] = labels[tissue]
    if lesion is not None:
        out[lesion] = labels["lesion"]
    return out


def pick_channel(channel_names: dict[int, str], channel: str | None, contrast: str | None,
                 estimate: bool) -> tuple[int, str]:
    """(channel index, contrast) from --channel/--contrast, or the channel with the best tissue contrast."""
    if channel is not None:
        matches = [i for i, n in channel_names.items() if n.lower() == channel.lower() or str(i) == channel]
        if not matches:
            raise NNSynthError(f"no channel {channel!r} in dataset.json (channels: "
                               + ", ".join(f"{i}={n}" for i, n in channel_names.items()) + ")")
        index = matches[0]
    elif not estimate:
        index = min(channel_names)
    else:
        known = {i: guess_contrast(n) for i, n in channel_names.items()}
        ranked = sorted((CHANNEL_PREFERENCE.index(c), i) for i, c in known.items() if c)
        if not ranked and contrast is None:
            raise NNSynthError("cannot tell the contrast of channels " + ", ".join(channel_names.values())
                               + "; pass --channel and --contrast")
        index = ranked[0][1] if ranked else min(channel_names)
    chosen = contrast or guess_contrast(channel_names[index]) or ""
    if estimate and chosen not in CONTRAST_ORDER:
        raise NNSynthError(f"unknown contrast of channel {channel_names[index]!r}; pass --contrast "
                           + "|".join(CONTRAST_ORDER))
    return index, chosen
