"""The preprocessed-dataset handle: one planned + preprocessed configuration of an nnU-Net dataset.

Everything nnsynth reads from a preprocessed dataset goes through this handle: the plans (nnU-Net's
own PlansManager), dataset.json (read once), the data folder, the raw folder beside it (for the
anatomical label maps), nnU-Net's dataset class for loading cases, and the fingerprint that
generator checkpoints are checked against. The trainer builds it from what nnU-Net already holds
(``from_trainer``); commands open it by dataset id (``open_preprocessed``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.fingerprint import DatasetFingerprint
from nnunet_synth.nnunet_io.folders import find_dataset, require_dataset

DEFAULT_PLANS = "nnUNetPlans"
DEFAULT_CONFIGURATION = "3d_fullres"


@dataclass
class PreprocessedDataset:
    """Handles on one planned+preprocessed dataset configuration, via nnU-Net's PlansManager."""

    dataset_id: int
    root: Path  # $nnUNet_preprocessed/DatasetXXX_Name
    plans_name: str
    configuration: str
    plans_manager: Any
    configuration_manager: Any
    dataset_json: dict[str, Any]

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def data_folder(self) -> Path:
        return self.root / self.configuration_manager.data_identifier

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel spacing of the preprocessed (always 3D) cases, in nnU-Net's transposed axis order.

        A 2d configuration resamples only in-plane: nnU-Net's preprocessor keeps each case's own spacing along the
        first axis. One value serves every case here, the plans' median (``original_median_spacing_after_transp``):
        exact when the cohort's slice spacing is uniform (the demo cohorts), approximate (lesion edge distances,
        preview volumes) when it varies.
        """
        spacing = [float(s) for s in self.configuration_manager.spacing]
        if len(spacing) == 2:
            spacing = [float(self.plans_manager.plans["original_median_spacing_after_transp"][0]), *spacing]
        return tuple(spacing)

    @property
    def fingerprint(self) -> DatasetFingerprint:
        cm = self.configuration_manager
        return DatasetFingerprint(
            dataset_name=self.name,
            plans_name=self.plans_manager.plans_name,
            configuration=self.configuration,
            spacing=cm.spacing,
            patch_size=cm.patch_size,
            channel_names=self.dataset_json.get("channel_names", self.dataset_json.get("modality", {})),
            labels=self.dataset_json["labels"],
            normalization_schemes=cm.normalization_schemes,
            transpose_forward=self.plans_manager.transpose_forward,
        )

    @property
    def plans(self) -> dict[str, Any]:
        return self.plans_manager.plans

    @property
    def raw(self) -> Path:
        """$nnUNet_raw/DatasetXXX_Name: the raw images and the anatomical label maps (labelmapsTr/)."""
        folder = find_dataset(self.dataset_id, "nnUNet_raw")
        if folder is None:
            raise NNSynthError(f"{self.name} has no raw dataset in $nnUNet_raw (nnsynth needs its labelmapsTr/)")
        return folder

    def identifiers(self) -> list[str]:
        """The preprocessed case ids (nnU-Net's own listing of the data folder)."""
        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

        return sorted(infer_dataset_class(str(self.data_folder)).get_identifiers(str(self.data_folder)))

    def load_dataset(self, identifiers: list[str] | None = None):
        """nnU-Net's dataset class (blosc2 / npz) over the data folder, for ``load_case``."""
        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

        return infer_dataset_class(str(self.data_folder))(str(self.data_folder), identifiers=identifiers)

    @classmethod
    def from_trainer(cls, trainer: Any) -> PreprocessedDataset:
        """The handle of the dataset an nnU-Net trainer is training on (nothing is read again)."""
        from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id

        pm = trainer.plans_manager
        return cls(convert_dataset_name_to_id(pm.dataset_name), Path(trainer.preprocessed_dataset_folder_base),
                   pm.plans_name, trainer.configuration_name, pm, trainer.configuration_manager,
                   trainer.dataset_json)


def open_preprocessed(dataset_id: int, plans: str = DEFAULT_PLANS,
                      configuration: str = DEFAULT_CONFIGURATION,
                      require_data: bool = True) -> PreprocessedDataset:
    """Open $nnUNet_preprocessed/DatasetXXX_Name/<plans>.json with nnU-Net's PlansManager."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    root = require_dataset(dataset_id, "nnUNet_preprocessed")
    plans_file = root / f"{plans}.json"
    if not plans_file.is_file():
        raise NNSynthError(f"{plans_file} not found: run nnUNetv2_plan_and_preprocess -d {dataset_id} first "
                           "(or pass the right --plans name)")
    dataset_json_file = root / "dataset.json"
    if not dataset_json_file.is_file():
        raw = require_dataset(dataset_id, "nnUNet_raw")
        dataset_json_file = raw / "dataset.json"
    dataset_json = json.loads(dataset_json_file.read_text())
    pm = PlansManager(str(plans_file))
    if configuration not in pm.available_configurations:
        raise NNSynthError(f"configuration {configuration!r} is not in {plans_file} "
                           f"(available: {', '.join(pm.available_configurations)})")
    pre = PreprocessedDataset(dataset_id, root, plans, configuration, pm, pm.get_configuration(configuration),
                              dataset_json)
    if require_data and not pre.data_folder.is_dir():
        raise NNSynthError(f"{pre.data_folder} not found: run nnUNetv2_plan_and_preprocess -d {dataset_id} "
                           f"-c {configuration} first")
    return pre


def dataset_fingerprint(dataset_id: int, plans: str = DEFAULT_PLANS,
                        configuration: str = DEFAULT_CONFIGURATION) -> DatasetFingerprint:
    """Fingerprint of the preprocessed dataset ``dataset_id`` (what a checkpoint is checked against)."""
    return open_preprocessed(dataset_id, plans, configuration, require_data=False).fingerprint
