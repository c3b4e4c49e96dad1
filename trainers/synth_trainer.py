"""nnUNetTrainerSynth: nnU-Net training with synthetic stroke cases mixed into every batch.

Thin subclasses in nnU-Net's style: the variants only change class attributes.
``NNSYNTH_FRACTION``, ``NNSYNTH_LESIONS`` (real | maskgan) and ``NNSYNTH_RENDERER`` (gmm | pix2pix | spade)
override a variant's settings for quick experiments;
``NNSYNTH_POOL_SIZE`` / ``NNSYNTH_POOL_USES`` set the background case pool (size 0: generate every
synthetic case on request, reproducible for a seed but slower).
Validation, the final validation and prediction are nnU-Net's own and see real cases only.
"""

from __future__ import annotations

import os
from pathlib import Path

from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.paths import nnUNet_raw
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

from nnunet_synth.case_feed import CaseFeed
from nnunet_synth.case_pool import CasePool
from nnunet_synth.engine_builder import build_engine
from nnunet_synth.errors import NNSynthError
from nnunet_synth.mixing import SynthMixDataset
from trainers.budget import nnUNetTrainerBudget


class nnUNetSynthDataLoader(nnUNetDataLoader):
    """nnU-Net's loader, drawing each batch's keys with the exact synthetic share of a SynthMixDataset."""

    def get_indices(self):
        return self._data.draw_batch_keys(self.batch_size)


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
        # generation runs in this (main) process, on the training device; with forked augmentation
        # workers the cases reach them through a CaseFeed, so no worker ever generates (or touches CUDA)
        device = self.device.type
        engine = build_engine(dataset_tr, list(dataset_tr.identifiers), self._raw_dataset_folder(),
                              Path(self.preprocessed_dataset_folder_base), self.plans_manager.plans,
                              self.configuration_name, foreground_label=self.label_manager.foreground_labels[0],
                              seed=self.fold, log=self.print_to_log_file,
                              lesions=self._setting("NNSYNTH_LESIONS", self.lesion_source, str),
                              renderer=self._setting("NNSYNTH_RENDERER", self.renderer, str),
                              dataset_id=convert_dataset_name_to_id(self.plans_manager.dataset_name),
                              fold=self.fold, device=device)
        pool_size = self._setting("NNSYNTH_POOL_SIZE", self.pool_size, int)
        pool_uses = self._setting("NNSYNTH_POOL_USES", self.pool_uses, int)
        pool, self.case_feed = None, None
        if get_allowed_n_proc_DA() > 0:
            self.case_feed = CaseFeed(engine.make_case, capacity=max(pool_size, 2), seed=self.fold)
            self.case_feed.start()
            pool = CasePool(self.case_feed.take, size=max(pool_size, 1), max_uses=pool_uses)
            where = (f"generated in the main process on {device}, fed to the augmentation workers; each worker "
                     f"keeps {pool.size} cases, each used at most {pool.max_uses} times")
        elif pool_size > 0:
            pool = CasePool(engine.make_case, size=pool_size, max_uses=pool_uses)
            where = f"background pool of {pool.size} cases, each used at most {pool.max_uses} times"
        else:
            where = "generated on request (no pool)"
        self.print_to_log_file(f"nnsynth: synthetic fraction of each training batch: {fraction}; {where}")
        # with a feed, the dataset copied into the workers holds no engine: workers cannot generate
        self.synth_dataset = SynthMixDataset(dataset_tr, None if self.case_feed else engine, fraction, pool)
        self.synth_engine = engine
        return self.synth_dataset, dataset_val

    def get_dataloaders(self):
        """nnU-Net's own get_dataloaders, with the synthetic-mixing loader for training.

        Written out (as nnU-Net's DA variants do) because nnU-Net forks its augmentation workers inside
        this method: the loader class must be right before that happens.
        """
        if self.dataset_class is None:
            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        patch_size = self.configuration_manager.patch_size
        deep_supervision_scales = self._get_deep_supervision_scales()
        rotation_for_da, do_dummy_2d_data_aug, initial_patch_size, mirror_axes = \
            self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        regions = self.label_manager.foreground_regions if self.label_manager.has_regions else None
        tr_transforms = self.get_training_transforms(
            patch_size, rotation_for_da, deep_supervision_scales, mirror_axes, do_dummy_2d_data_aug,
            use_mask_for_norm=self.configuration_manager.use_mask_for_norm, is_cascaded=self.is_cascaded,
            foreground_labels=self.label_manager.foreground_labels, regions=regions,
            ignore_label=self.label_manager.ignore_label)
        val_transforms = self.get_validation_transforms(
            deep_supervision_scales, is_cascaded=self.is_cascaded,
            foreground_labels=self.label_manager.foreground_labels, regions=regions,
            ignore_label=self.label_manager.ignore_label)
        dataset_tr, dataset_val = self.get_tr_and_val_datasets()
        loader_class = nnUNetSynthDataLoader if isinstance(dataset_tr, SynthMixDataset) else nnUNetDataLoader
        common = dict(oversample_foreground_percent=self.oversample_foreground_percent, sampling_probabilities=None,
                      pad_sides=None, probabilistic_oversampling=self.probabilistic_oversampling)
        dl_tr = loader_class(dataset_tr, self.batch_size, initial_patch_size, patch_size, self.label_manager,
                             transforms=tr_transforms, **common)
        dl_val = nnUNetDataLoader(dataset_val, self.batch_size, patch_size, patch_size, self.label_manager,
                                  transforms=val_transforms, **common)
        n_proc = get_allowed_n_proc_DA()
        if n_proc == 0:
            mt_train, mt_val = SingleThreadedAugmenter(dl_tr, None), SingleThreadedAugmenter(dl_val, None)
        else:
            pin = self.device.type == "cuda"
            mt_train = NonDetMultiThreadedAugmenter(dl_tr, None, n_proc, max(6, n_proc // 2), None, pin, 0.002)
            mt_val = NonDetMultiThreadedAugmenter(dl_val, None, max(1, n_proc // 2), max(3, n_proc // 4), None,
                                                  pin, 0.002)
        _ = next(mt_train)
        _ = next(mt_val)
        return mt_train, mt_val

    def on_train_end(self):
        pool = getattr(getattr(self, "synth_dataset", None), "pool", None)
        if pool is not None and getattr(self, "case_feed", None) is None:
            stats = pool.stats()
            self.print_to_log_file(
                f"nnsynth: pool generated {stats['generated']} cases ({stats['seconds_per_case']:.2f} s each) "
                f"for {stats['served']} synthetic samples; served while starved: {stats['starved']}")
            pool.close()
        if getattr(self, "case_feed", None) is not None:
            self.print_to_log_file(f"nnsynth: main process generated {self.case_feed.produced} cases for the workers")
            self.case_feed.close()
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


class nnUNetTrainerSynthOnlyPix2pix(nnUNetTrainerSynthPix2pix):
    """Synthetic-only arm with the learned generators (mask GAN + pix2pix), as in `nnsynth experiment`."""

    synth_fraction = 1.0
