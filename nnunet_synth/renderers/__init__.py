"""Label map -> image renderers. The Gaussian-mixture renderer needs no training."""

from nnunet_synth.renderers.gaussian_mixture import GaussianMixtureConfig, GaussianMixtureRenderer

__all__ = ["GaussianMixtureConfig", "GaussianMixtureRenderer"]
