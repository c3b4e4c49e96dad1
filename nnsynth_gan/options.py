"""What the two GAN trainings share: their option fields, and the argument blocks of their commands.

``TrainOptions`` holds the fields both loops read (dataset, fold, budget, Adam, saving, seed); the mask
GAN and the translators inherit it and add their own losses and shapes, as pytorch-CycleGAN-and-pix2pix's
options do. Imports nothing heavy, so `nnsynth --help` stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from nnunet_synth import arguments as arg
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.preprocessed import DEFAULT_CONFIGURATION, DEFAULT_PLANS


@dataclass
class TrainOptions:
    """Options of every adversarial training run; subclasses change defaults and add their own fields."""

    dataset_id: int
    fold: str = "0"
    steps: int = 2000
    device: str = "cpu"
    resume: bool = False
    plans: str = DEFAULT_PLANS
    configuration: str = DEFAULT_CONFIGURATION
    batch_size: int = 1  # per rank
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    save_every: int = 250
    seed: int = 0
    augment: bool = True
    model: dict[str, Any] = field(default_factory=dict)  # model config overrides
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse values that would train nothing or diverge at once (the command line checks them too)."""
        for key in ("steps", "batch_size", "save_every"):
            if int(getattr(self, key)) < 1:
                raise NNSynthError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0 < self.lr <= 1 or not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            raise NNSynthError(f"lr must be in (0, 1] and betas in [0, 1), got lr={self.lr}, "
                               f"betas=({self.beta1}, {self.beta2})")


def voxel_shape(text: str, what: str) -> tuple[int, int, int]:
    """``N`` or ``X,Y,Z`` (or ``XxYxZ``) voxels, each >= 4; ``what`` names the value in the error."""
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 4:
        raise argparse.ArgumentTypeError(f"{what} must be N or X,Y,Z voxels (each >= 4)")
    return tuple(parts)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def add_dataset_arguments(p: argparse.ArgumentParser, fold_help: str) -> None:
    """Dataset id, fold, plans, configuration and device, first on every command."""
    p.add_argument("-d", "--dataset-id", type=arg.DATASET_ID, required=True, help="nnU-Net dataset id")
    p.add_argument("--fold", default="0", help=fold_help)
    p.add_argument("--plans", default="nnUNetPlans", type=arg.name("--plans"),
                   help="plans identifier (default nnUNetPlans)")
    p.add_argument("--configuration", default="3d_fullres", help="nnU-Net configuration (default 3d_fullres)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")


def add_steps_arguments(p: argparse.ArgumentParser, default: int, unit: str, latest: str) -> None:
    """``--steps`` (total ``unit`` steps to reach) and ``--continue`` (from the ``latest`` checkpoint file)."""
    p.add_argument("--steps", type=arg.POSITIVE, default=default,
                   help=f"total {unit} steps to reach (default {default})")
    p.add_argument("--continue", dest="resume", action="store_true",
                   help=f"resume exactly from {latest} (optimization settings come from it)")


def add_save_arguments(p: argparse.ArgumentParser) -> None:
    """``--save-every`` and ``--seed``."""
    p.add_argument("--save-every", type=arg.POSITIVE, default=250, help="checkpoint + PNGs every N steps (default 250)")
    p.add_argument("--seed", type=arg.NON_NEGATIVE, default=0)


def add_switch_arguments(p: argparse.ArgumentParser) -> None:
    """``--no-augment`` and ``--no-progress``, last on the training commands."""
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random flips")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bar")
