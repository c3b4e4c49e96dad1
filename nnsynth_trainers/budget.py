"""nnU-Net trainers whose training budget can be shrunk from the environment.

nnU-Net's defaults (1000 epochs x 250 iterations) take weeks on a CPU. Tests, the demo and the
experiment runner set ``NNSYNTH_*`` variables (``nnunet_synth.settings.TrainingBudget``) so that the
real-only baseline and the synth arm get the same, smaller budget through the same code path. The
variables are read before nnU-Net creates the fold's output folder, so a bad value leaves nothing behind.
"""

from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnsynth_trainers.learning_guard import logged_values, stalled_learning
from nnunet_synth.settings import TrainingBudget


class nnUNetTrainerBudget(nnUNetTrainer):
    """Plain nnU-Net training (real cases only) with the budget taken from NNSYNTH_* variables."""

    stall_epochs: int = 20  # warn when validation pseudo-Dice stays 0 this long while the loss falls

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        budget = TrainingBudget.from_environment()
        self.check_settings()
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget = budget
        self.budget_overrides = budget.trainer_attributes()
        for attribute, value in self.budget_overrides.items():
            setattr(self, attribute, value)
        if budget.torch_threads is not None:
            torch.set_num_threads(budget.torch_threads)
            self.budget_overrides["torch_threads"] = budget.torch_threads

    def check_settings(self) -> None:
        """Refuse bad settings before nnU-Net creates the output folder (variants add their own)."""

    def perform_actual_validation(self, save_probabilities: bool = False):
        if not self.budget.final_validation:
            self.print_to_log_file("nnsynth: final validation skipped (NNSYNTH_FINAL_VALIDATION=0)")
            return
        super().perform_actual_validation(save_probabilities)

    def on_epoch_end(self):
        super().on_epoch_end()
        self.logged_stall_warning()

    def logged_stall_warning(self) -> str | None:
        """Write the stalled-learning warning into the training log once (``learning_guard.stalled_learning``)."""
        if getattr(self, "_stall_warned", False):
            return None
        try:
            log = {key: logged_values(self.logger, key) for key in ("mean_fg_dice", "train_losses")}
        except Exception as exc:  # the guard must never stop a training
            self._stall_warned = True
            self.print_to_log_file(f"nnsynth: stalled-learning check unavailable ({type(exc).__name__}: {exc})")
            return None
        warning = stalled_learning(log, self.stall_epochs, getattr(self, "mixes_synthetic", False))
        if warning:
            self._stall_warned = True
            self.print_to_log_file(f"nnsynth WARNING: {warning}")
        return warning
