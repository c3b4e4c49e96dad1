"""nnUNetTrainerSynth: nnU-Net training with synthetic stroke cases mixed into every batch.

Thin subclasses in nnU-Net's style: the variants only change class attributes.
``NNSYNTH_FRACTION`` overrides the synthetic fraction of any variant for quick experiments.
Validation, the final validation and prediction are nnU-Net's own and see real cases only.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from nnunetv2.paths import nnUNet_raw

from nnunet_synth.engine_builder import build_engine
from nnunet_synth.errors import NNSynthError
from nnunet_synth.mixing import SynthMixDataset
from trainers.budget import nnUNetTrainerBudget


class nnUNetTrainerSynth(nnUNetTrainerBudget):
    """Half of every training batch synthetic (renderer: Gaussian mixture, lesions: real components)."""

    synth_fraction: float = 0.5

    def _synth_fraction(self) -> float:
        value = os.environ.get("NNSYNTH_FRACTION")
        return float(value) if value else self.synth_fraction

    def _raw_dataset_folder(self) -> Path:
        folder = Path(str(nnUNet_raw)) / self.plans_manager.dataset_name
        if not folder.is_dir():
            raise NNSynthError(f"nnUNetTrainerSynth needs the raw dataset (for labelmapsTr/) at {folder}")
        return folder

    def get_tr_and_val_datasets(self):
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        fraction = self._synth_fraction()
        if fraction <= 0:
            return dataset_tr, dataset_val
        engine = build_engine(dataset_tr, list(dataset_tr.identifiers), self._raw_dataset_folder(),
                              Path(self.preprocessed_dataset_folder_base), self.plans_manager.plans,
                              self.configuration_name, foreground_label=self.label_manager.foreground_labels[0],
                              seed=self.fold, log=self.print_to_log_file)
        self.print_to_log_file(f"nnsynth: synthetic fraction of each training batch: {fraction}")
        return SynthMixDataset(dataset_tr, engine, fraction), dataset_val

    def get_dataloaders(self):
        dl_train, dl_val = super().get_dataloaders()
        loader = getattr(dl_train, "generator", None) or getattr(dl_train, "data_loader", None)
        mixed = getattr(loader, "_data", None)
        if isinstance(mixed, SynthMixDataset):
            # exact share of synthetic keys per batch instead of the loader's uniform draw
            loader.get_indices = functools.partial(mixed.draw_batch_keys, loader.batch_size)
        return dl_train, dl_val


class nnUNetTrainerSynth_p25(nnUNetTrainerSynth):
    synth_fraction = 0.25


class nnUNetTrainerSynth_p75(nnUNetTrainerSynth):
    synth_fraction = 0.75


class nnUNetTrainerSynthOnly(nnUNetTrainerSynth):
    """The paper's synthetic-only arm: every training sample is generated (validation stays real)."""

    synth_fraction = 1.0
