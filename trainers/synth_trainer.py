"""nnUNetTrainerSynth: nnU-Net training with synthetic stroke cases mixed into every batch.

Thin subclasses in nnU-Net's style: the variants only change class attributes.
``NNSYNTH_FRACTION``, ``NNSYNTH_LESIONS`` (real | maskgan) and ``NNSYNTH_RENDERER`` (gmm | pix2pix | spade)
override a variant's settings for quick experiments;
``NNSYNTH_POOL_SIZE`` / ``NNSYNTH_POOL_USES`` set the background case pool (size 0: generate every
synthetic case on request, reproducible for a seed but slower).
Validation, the final validation and prediction are nnU-Net's own and see real cases only.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from nnunetv2.paths import nnUNet_raw
from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

from nnunet_synth.case_pool import CasePool
from nnunet_synth.engine_builder import build_engine
from nnunet_synth.errors import NNSynthError
from nnunet_synth.mixing import SynthMixDataset
from trainers.budget import nnUNetTrainerBudget


class nnUNetTrainerSynth(nnUNetTrainerBudget):
    """Half of every training batch synthetic (renderer: Gaussian mixture, lesions: real components).

    Needs no trained generator, so it works right after `nnsynth demo-cohort` / `nnsynth labelmaps`.
    """

    synth_fraction: float = 0.5
    lesion_source: str = "real"
    renderer: str = "gmm"
    pool_size: int = 16
    pool_uses: int = 4

    def _setting(self, variable: str, default, cast):
        value = os.environ.get(variable)
        try:
            return cast(value) if value else default
        except ValueError as exc:
            raise NNSynthError(f"{variable}={value!r} is not a valid {cast.__name__}") from exc

    def _raw_dataset_folder(self) -> Path:
        folder = Path(str(nnUNet_raw)) / self.plans_manager.dataset_name
        if not folder.is_dir():
            raise NNSynthError(f"nnUNetTrainerSynth needs the raw dataset (for labelmapsTr/) at {folder}")
        return folder

    def get_tr_and_val_datasets(self):
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        fraction = self._setting("NNSYNTH_FRACTION", self.synth_fraction, float)
        if fraction <= 0:
            return dataset_tr, dataset_val
        # generators run where the pool runs: never CUDA inside nnU-Net's forked augmentation workers
        device = self.device.type if get_allowed_n_proc_DA() == 0 else "cpu"
        engine = build_engine(dataset_tr, list(dataset_tr.identifiers), self._raw_dataset_folder(),
                              Path(self.preprocessed_dataset_folder_base), self.plans_manager.plans,
                              self.configuration_name, foreground_label=self.label_manager.foreground_labels[0],
                              seed=self.fold, log=self.print_to_log_file,
                              lesions=self._setting("NNSYNTH_LESIONS", self.lesion_source, str),
                              renderer=self._setting("NNSYNTH_RENDERER", self.renderer, str),
                              dataset_id=convert_dataset_name_to_id(self.plans_manager.dataset_name),
                              fold=self.fold, device=device)
        pool_size = self._setting("NNSYNTH_POOL_SIZE", self.pool_size, int)
        pool = None
        if pool_size > 0:
            pool = CasePool(engine.make_case, size=pool_size,
                            max_uses=self._setting("NNSYNTH_POOL_USES", self.pool_uses, int))
        self.print_to_log_file(f"nnsynth: synthetic fraction of each training batch: {fraction}; "
                               + (f"background pool of {pool.size} cases, each used at most {pool.max_uses} times"
                                  if pool else "generated on request (no pool)"))
        self.synth_dataset = SynthMixDataset(dataset_tr, engine, fraction, pool)
        return self.synth_dataset, dataset_val

    def get_dataloaders(self):
        dl_train, dl_val = super().get_dataloaders()
        loader = getattr(dl_train, "generator", None) or getattr(dl_train, "data_loader", None)
        mixed = getattr(loader, "_data", None)
        if isinstance(mixed, SynthMixDataset):
            # exact share of synthetic keys per batch instead of the loader's uniform draw
            loader.get_indices = functools.partial(mixed.draw_batch_keys, loader.batch_size)
        return dl_train, dl_val

    def on_train_end(self):
        pool = getattr(getattr(self, "synth_dataset", None), "pool", None)
        if pool is not None:
            stats = pool.stats()
            self.print_to_log_file(
                f"nnsynth: pool generated {stats['generated']} cases ({stats['seconds_per_case']:.2f} s each) "
                f"for {stats['served']} synthetic samples; served while starved: {stats['starved']}")
            pool.close()
        super().on_train_end()


class nnUNetTrainerSynth_p25(nnUNetTrainerSynth):
    synth_fraction = 0.25


class nnUNetTrainerSynth_p75(nnUNetTrainerSynth):
    synth_fraction = 0.75


class nnUNetTrainerSynthOnly(nnUNetTrainerSynth):
    """The paper's synthetic-only arm: every training sample is generated (validation stays real)."""

    synth_fraction = 1.0


class nnUNetTrainerSynthMaskGAN(nnUNetTrainerSynth):
    """New lesion shapes from the mask GAN (`nnsynth train-maskgan`), Gaussian-mixture rendering."""

    lesion_source = "maskgan"


class nnUNetTrainerSynthPix2pix(nnUNetTrainerSynth):
    """Mask GAN lesions rendered by the pix2pix-3D translator (`nnsynth train-translator --arch pix2pix`)."""

    lesion_source = "maskgan"
    renderer = "pix2pix"


class nnUNetTrainerSynthSPADE(nnUNetTrainerSynth):
    """The seed paper's full method: mask GAN lesions rendered by SPADE-3D (`--arch spade`)."""

    lesion_source = "maskgan"
    renderer = "spade"
