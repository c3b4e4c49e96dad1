"""A synthetic case in the form nnU-Net's loader takes from ``dataset.load_case``.

``load_case`` returns data (C, X, Y, Z) float32, seg (1, X, Y, Z) with -1 outside the crop (nonzero)
mask, the previous stage's seg (None here) and properties whose ``class_locations`` drive nnU-Net's
foreground oversampling. The provenance keys (``nnsynth_anatomy``, ``nnsynth_lesion_source``) travel
along in properties so a batch can be traced back to its host and lesion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_synth.synthesis.engine import SyntheticCase


@dataclass
class NNUNetCase:
    data: np.ndarray  # (C, X, Y, Z) float32
    seg: np.ndarray  # (1, X, Y, Z) int8: -1 outside the crop mask, 0 background, foreground_label in the lesion
    properties: dict
    labelmap: np.ndarray  # (X, Y, Z) the anatomical map it was rendered from (for pictures and export)

    def as_load_case(self) -> tuple[np.ndarray, np.ndarray, None, dict]:
        return self.data, self.seg, None, self.properties


def to_nnunet_case(case: SyntheticCase, foreground_label: int = 1) -> NNUNetCase:
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    seg = case.segmentation(foreground_label)[None]
    class_locations = DefaultPreprocessor._sample_foreground_locations(
        seg, [foreground_label], seed=case.provenance["sample_seed"])
    properties = {"class_locations": class_locations,
                  **{f"nnsynth_{k}": v for k, v in case.provenance.items() if k != "sample_seed"}}
    return NNUNetCase(data=case.image, seg=seg.astype(np.int8), properties=properties, labelmap=case.labelmap)
