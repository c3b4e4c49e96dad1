"""nnunet-synth: synthetic stroke MRI for nnU-Net v2 (generators, synthesis engine, `nnsynth` CLI)."""

__version__ = "0.1.0"
