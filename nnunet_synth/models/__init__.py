"""Generators as plain ``nn.Module``s, configured by small dataclasses stored in their checkpoints."""

from nnunet_synth.models.maskgan import MaskCritic, MaskGANConfig, MaskGenerator

__all__ = ["MaskCritic", "MaskGANConfig", "MaskGenerator"]
