"""Where nnU-Net finds our trainers: the folder to put in nnUNet_extTrainer."""

from __future__ import annotations

from pathlib import Path

SHIM_FOLDER = Path(__file__).resolve().parent / "nnunet_ext"


def trainer_path() -> Path:
    return SHIM_FOLDER
