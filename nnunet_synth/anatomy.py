"""Anatomical label maps in nnU-Net's preprocessed space.

The generators work on nnU-Net's preprocessed grid (transposed, cropped to the non-zero box,
resampled to the target spacing). Raw label maps (``labelmapsTr/CASE.nii.gz``) are pushed through
nnU-Net's own preprocessor as if they were segmentations, so they land on exactly the voxel grid of
the preprocessed images. Results are cached next to the preprocessed data.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_synth.errors import NNSynthError

DEFAULT_ANATOMICAL_LABELS = {"background": 0, "csf": 1, "gray_matter": 2, "white_matter": 3, "lesion": 4}
LABELMAP_FOLDER = "labelmapsTr"


@dataclass(frozen=True)
class AnatomyClasses:
    """Which label-map value is which tissue; read from dataset.json["anatomical_labels"]."""

    labels: dict[str, int]

    @classmethod
    def from_dataset_json(cls, dataset_json: dict) -> AnatomyClasses:
        labels = dataset_json.get("anatomical_labels", DEFAULT_ANATOMICAL_LABELS)
        if "lesion" not in labels or "background" not in labels:
            raise NNSynthError('dataset.json "anatomical_labels" must name at least "background" and "lesion"')
        return cls({str(k): int(v) for k, v in labels.items()})

    @property
    def lesion(self) -> int:
        return self.labels["lesion"]

    @property
    def background(self) -> int:
        return self.labels["background"]

    @property
    def num_classes(self) -> int:
        return max(self.labels.values()) + 1

    @property
    def parenchyma(self) -> tuple[int, ...]:
        """Classes a stroke lesion may occupy: brain tissue, never CSF, ventricles or background."""
        names = [n for n in self.labels if n not in ("background", "lesion")
                 and not any(t in n for t in ("csf", "ventric", "skull", "vessel"))]
        return tuple(self.labels[n] for n in names)


def _cache_folder(preprocessed_dataset: Path, data_identifier: str) -> Path:
    return preprocessed_dataset / f"nnsynth_labelmaps_{data_identifier}"


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npy")
    os.close(fd)
    np.save(tmp, array)
    os.replace(tmp, path)


def preprocessed_labelmaps(raw_dataset: Path, preprocessed_dataset: Path, plans: dict, configuration: str,
                           case_ids: list[str], verbose: bool = False) -> dict[str, np.ndarray]:
    """Label maps of case_ids on the preprocessed grid (int16, -1 outside nnU-Net's crop mask)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    plans_manager = PlansManager(plans)
    config = plans_manager.get_configuration(configuration)
    cache = _cache_folder(preprocessed_dataset, config.data_identifier)
    cache.mkdir(parents=True, exist_ok=True)
    dataset_json = json.loads((preprocessed_dataset / "dataset.json").read_text())
    result: dict[str, np.ndarray] = {}
    missing = [c for c in case_ids if not (cache / f"{c}.npy").is_file()]
    if missing:
        files = get_filenames_of_train_images_and_targets(str(raw_dataset), dataset_json)
        absent = [str(raw_dataset / LABELMAP_FOLDER / f"{c}{dataset_json['file_ending']}") for c in missing
                  if not (raw_dataset / LABELMAP_FOLDER / f"{c}{dataset_json['file_ending']}").is_file()]
        if absent:
            raise NNSynthError(f"anatomical label maps missing for {len(absent)} case(s), e.g. {absent[0]}; "
                               "make them with `nnsynth labelmaps -d ID` (or use the demo cohort)")
        preprocessor = config.preprocessor_class(verbose=verbose)
        reader = plans_manager.image_reader_writer_class()
        for case in missing:
            labelmap_file = raw_dataset / LABELMAP_FOLDER / f"{case}{dataset_json['file_ending']}"
            data, props = reader.read_images(files[case]["images"])
            labelmap, _ = reader.read_seg(str(labelmap_file))
            _, lm, _ = preprocessor.run_case_npy(data, labelmap, props, plans_manager, config, dataset_json)
            _atomic_save_npy(cache / f"{case}.npy", lm.astype(np.int16))
    for case in case_ids:
        result[case] = np.load(cache / f"{case}.npy")
    return result
