"""nnU-Net trainers whose training budget can be shrunk from the environment.

nnU-Net's defaults (1000 epochs x 250 iterations) take weeks on a CPU. Tests, the demo and the
experiment runner set these variables so that the real-only baseline and the synth arm get the
same, smaller budget through the same code path:

- ``NNSYNTH_EPOCHS``: num_epochs
- ``NNSYNTH_ITERATIONS``: num_iterations_per_epoch
- ``NNSYNTH_VAL_ITERATIONS``: num_val_iterations_per_epoch
- ``NNSYNTH_SAVE_EVERY``: save_every
- ``NNSYNTH_TORCH_THREADS``: torch threads of the trainer (nnU-Net takes every core on a CPU; the
  experiment runner sets this when it trains several runs side by side)
- ``NNSYNTH_FINAL_VALIDATION=0``: skip nnU-Net's final sliding-window validation of the fold (minutes per
  case on a CPU) when the caller evaluates on a held-out test set anyway
"""

from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

BUDGET_VARIABLES = {
    "NNSYNTH_EPOCHS": "num_epochs",
    "NNSYNTH_ITERATIONS": "num_iterations_per_epoch",
    "NNSYNTH_VAL_ITERATIONS": "num_val_iterations_per_epoch",
    "NNSYNTH_SAVE_EVERY": "save_every",
}


def apply_budget_from_environment(trainer: nnUNetTrainer) -> dict[str, int]:
    applied = {}
    for variable, attribute in BUDGET_VARIABLES.items():
        value = os.environ.get(variable)
        if value:
            try:
                setattr(trainer, attribute, int(value))
            except ValueError as exc:
                raise ValueError(f"{variable} must be an integer, got {value!r}") from exc
            applied[attribute] = int(value)
    threads = os.environ.get("NNSYNTH_TORCH_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))
        applied["torch_threads"] = int(threads)
    return applied


class nnUNetTrainerBudget(nnUNetTrainer):
    """Plain nnU-Net training (real cases only) with the budget taken from NNSYNTH_* variables."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget_overrides = apply_budget_from_environment(self)

    def perform_actual_validation(self, save_probabilities: bool = False):
        if os.environ.get("NNSYNTH_FINAL_VALIDATION", "1") == "0":
            self.print_to_log_file("nnsynth: final validation skipped (NNSYNTH_FINAL_VALIDATION=0)")
            return
        super().perform_actual_validation(save_probabilities)
