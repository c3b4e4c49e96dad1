"""nnUNetTrainerSynth: nnU-Net training with synthetic stroke cases mixed into every batch.

Thin subclasses in nnU-Net's style: the variants only change class attributes (fraction, lesion
source, renderer). ``NNSYNTH_FRACTION``, ``NNSYNTH_LESIONS``, ``NNSYNTH_RENDERER``, ``NNSYNTH_POOL_SIZE``
and ``NNSYNTH_POOL_USES`` override them (``nnunet_synth.settings``). Validation, the final validation
and prediction are nnU-Net's own and see real cases only.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

from nnsynth_trainers.budget import nnUNetTrainerBudget
from nnunet_synth.errors import NNSynthError
from nnunet_synth.feeding.mixing import SynthMixDataset
from nnunet_synth.feeding.nnunet_format import to_nnunet_case
from nnunet_synth.nnunet_io.training_cases import TrainingCases
from nnunet_synth.settings import SynthesisSettings
from nnunet_synth.synthesis.builder import build_engine
from nnunet_synth.synthesis.registry import check_names


def fold_seed(fold: int | str) -> int:
    """A seed per fold; fold 'all' (training for deployment) gets a fixed one of its own."""
    return int(fold) if str(fold).isdigit() else zlib.crc32(str(fold).encode())


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
    synth_schedule: str = "constant"  # or "linear" / "cosine" decay from synth_fraction to synth_fraction_end
    synth_fraction_end: float | None = None  # None: synth_fraction

    @classmethod
    def synthesis_settings(cls) -> SynthesisSettings:
        """The variant's class attributes with the NNSYNTH_* overrides, checked (also used by `nnsynth preview`)."""
        defaults = SynthesisSettings(cls.synth_fraction, cls.lesion_source, cls.renderer, cls.pool_size,
                                     cls.pool_uses, cls.synth_schedule, cls.synth_fraction_end)
        settings = SynthesisSettings.from_environment(defaults)
        check_names(settings.lesions, settings.renderer)
        return settings

    def check_settings(self) -> None:
        self.synthesis = self.synthesis_settings()
        self.mixes_synthetic = self.synthesis.largest_fraction > 0  # a schedule from 0 still mixes

    def get_tr_and_val_datasets(self):
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        settings, foreground = self.synthesis, self.label_manager.foreground_labels[0]
        if not self.mixes_synthetic:
            return dataset_tr, dataset_val
        try:
            return self._mix_in_synthetic_cases(dataset_tr, dataset_val, settings, foreground)
        except NNSynthError as exc:
            self._remove_empty_fold_folder()
            raise NNSynthError(f"{type(self).__name__} cannot start: {exc}") from None

    def _remove_empty_fold_folder(self) -> None:
        """A trainer that stops before training leaves no fold folder that looks like a failed training."""
        folder = Path(self.output_folder)
        entries = list(folder.iterdir()) if folder.is_dir() else []
        if all(e.is_file() and (e.name.startswith("training_log_") or e.name == "debug.json") for e in entries):
            shutil.rmtree(folder, ignore_errors=True)

    def _mix_in_synthetic_cases(self, dataset_tr, dataset_val, settings: SynthesisSettings, foreground: int):
        engine = build_engine(TrainingCases.from_trainer(self, dataset_tr), settings.lesions, settings.renderer,
                              fold=self.fold, seed=fold_seed(self.fold), device=self.device.type,
                              foreground_label=foreground, log=self.print_to_log_file)
        self.synth_engine = engine
        self.synth_dataset = SynthMixDataset.open(
            dataset_tr, lambda rng: to_nnunet_case(engine.make_case(rng), foreground), settings.fraction,
            get_allowed_n_proc_DA(), settings.pool_size, settings.pool_uses, seed=fold_seed(self.fold),
            device=self.device.type, log=self.print_to_log_file)
        self.synth_supply = self.synth_dataset.supply
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

    def on_train_epoch_start(self):
        dataset = getattr(self, "synth_dataset", None)
        if dataset is not None and self.synthesis.schedule != "constant":
            dataset.fraction = self.synthesis.fraction_at(self.current_epoch / max(self.num_epochs - 1, 1))
            self.print_to_log_file(f"nnsynth: synthetic fraction this epoch: {dataset.fraction:.3f} "
                                   f"({self.synthesis.schedule} schedule)")
        super().on_train_epoch_start()

    def on_train_end(self):
        supply = getattr(self, "synth_supply", None)
        if supply is not None:
            line = supply.report()
            if line:
                self.print_to_log_file(line)
            supply.close()
        super().on_train_end()


class nnUNetTrainerSynth_p25(nnUNetTrainerSynth):
    synth_fraction = 0.25


class nnUNetTrainerSynth_p75(nnUNetTrainerSynth):
    synth_fraction = 0.75


class nnUNetTrainerSynth_decay(nnUNetTrainerSynth):
    """The synthetic share falls from 50% to 10% over training (cosine), so the end belongs to the real cases."""

    synth_schedule = "cosine"
    synth_fraction_end = 0.1


class nnUNetTrainerSynthRandomized(nnUNetTrainerSynth):
    """Whole scans rendered with domain randomization (random class intensities, sub-regions, bias, gamma,
    slice thickness, noise) for robustness to other scanners; real lesion shapes."""

    renderer = "randomized"


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


class nnUNetTrainerSynthInpaint(nnUNetTrainerSynth):
    """Lesions written into real scans: real lesion shapes of another training case, painted into a real host
    with the lesion contrast fitted on the fold's real lesions (no trained generator needed)."""

    renderer = "inpaint"


class nnUNetTrainerSynthInpaintMaskGAN(nnUNetTrainerSynthInpaint):
    """Mask GAN lesion shapes painted into real hosts with the fitted lesion contrast."""

    lesion_source = "maskgan"


class nnUNetTrainerSynthInpaintPix2pix(nnUNetTrainerSynthInpaint):
    """Mask GAN lesions whose appearance is pix2pix's (its with-minus-without lesion render) in real hosts."""

    lesion_source = "maskgan"
    renderer = "inpaint-pix2pix"


class nnUNetTrainerSynthInpaintSPADE(nnUNetTrainerSynthInpaint):
    """Mask GAN lesions whose appearance is SPADE's (its with-minus-without lesion render) in real hosts."""

    lesion_source = "maskgan"
    renderer = "inpaint-spade"


class nnUNetTrainerSynthOnlyPix2pix(nnUNetTrainerSynthPix2pix):
    """Synthetic-only arm with the learned generators (mask GAN + pix2pix), as in `nnsynth experiment`."""

    synth_fraction = 1.0
