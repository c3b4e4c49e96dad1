"""Argument blocks and parsers shared by the GAN-training commands (`maskgan_cli`, `translator_cli`).

Imports nothing heavy, so `nnsynth --help` stays fast.
"""

from __future__ import annotations

import argparse


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
    p.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id")
    p.add_argument("--fold", default="0", help=fold_help)
    p.add_argument("--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    p.add_argument("--configuration", default="3d_fullres", help="nnU-Net configuration (default 3d_fullres)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")


def add_steps_arguments(p: argparse.ArgumentParser, default: int, unit: str, latest: str) -> None:
    """``--steps`` (total ``unit`` steps to reach) and ``--continue`` (from the ``latest`` checkpoint file)."""
    p.add_argument("--steps", type=int, default=default, help=f"total {unit} steps to reach (default {default})")
    p.add_argument("--continue", dest="resume", action="store_true",
                   help=f"resume exactly from {latest} (optimization settings come from it)")


def add_save_arguments(p: argparse.ArgumentParser) -> None:
    """``--save-every`` and ``--seed``."""
    p.add_argument("--save-every", type=int, default=250, help="checkpoint + PNGs every N steps (default 250)")
    p.add_argument("--seed", type=int, default=0)


def add_switch_arguments(p: argparse.ArgumentParser) -> None:
    """``--no-augment`` and ``--no-progress``, last on the training commands."""
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random flips")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bar")
