"""The fold's training cases as the synthesis engine reads them: images, segmentations, label maps.

One object hands the engine builder everything it takes from nnU-Net's side: the preprocessed-dataset
handle, nnU-Net's own dataset (``load_case``) and the cases' anatomical label maps on the preprocessed
grid, checked to match the preprocessed cases voxel for voxel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.labelmap_grid import preprocessed_labelmaps
from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset


@dataclass
class TrainingCases:
    pre: PreprocessedDataset
    case_ids: list[str]
    dataset: Any  # nnU-Net dataset holding at least case_ids (load_case)
    labelmaps: dict[str, np.ndarray]  # spatial int16 on the preprocessed grid, -1 outside the crop mask

    @classmethod
    def of(cls, pre: PreprocessedDataset, case_ids: list[str], dataset: Any = None) -> TrainingCases:
        """The cases ``case_ids`` of the handle's dataset (nnU-Net's dataset is opened when not given)."""
        case_ids = [str(c) for c in case_ids]
        labelmaps = {k: v[0] for k, v in preprocessed_labelmaps(pre, case_ids).items()}
        return cls(pre, case_ids, dataset if dataset is not None else pre.load_dataset(case_ids), labelmaps)

    @classmethod
    def from_trainer(cls, trainer: Any, dataset: Any) -> TrainingCases:
        """The training cases of the fold an nnU-Net trainer trains on (its own dataset object)."""
        return cls.of(PreprocessedDataset.from_trainer(trainer), list(dataset.identifiers), dataset)

    def load(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(image (C, *S) float32, seg (*S)) of a training case, checked against its label map's grid."""
        data, seg, _, _ = self.dataset.load_case(case_id)
        seg = np.asarray(seg[0])
        if self.labelmaps[case_id].shape != seg.shape:
            raise NNSynthError(f"label map of {case_id} has shape {self.labelmaps[case_id].shape} on the "
                               f"preprocessed grid, the preprocessed case has {seg.shape}: delete the "
                               f"nnsynth_labelmaps_* cache in {self.pre.root} and train again")
        return np.asarray(data), seg

    def images(self, case_ids: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(image, label map) of the given cases, one at a time."""
        for case in case_ids:
            yield self.load(case)[0], self.labelmaps[case]

    def segmentations(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(case id, seg, label map) of every case, one at a time (nothing held beyond the current case)."""
        for case in self.case_ids:
            yield case, self.load(case)[1], self.labelmaps[case]
