"""The synthesis engine: healthy anatomy + lesion -> (image, segmentation) in preprocessed space.

One synthetic case: take a training case's anatomical label map, fill its own lesion with the
surrounding tissue (nearest non-lesion label), write in lesions drawn from the lesion source
(real components of another case now; a mask GAN later), render the map with a renderer
(Gaussian mixture now; pix2pix / SPADE later) and return what nnU-Net's loader expects from
``load_case``: data (C, X, Y, Z) float32, seg (1, X, Y, Z) with -1 outside the crop mask, and
properties holding ``class_locations`` for foreground oversampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import ndimage

from nnunet_synth.anatomy import AnatomyClasses
from nnunet_synth.lesion_bank import LesionCase, place_lesion_case


class Renderer(Protocol):
    num_channels: int

    def render(self, labelmap: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass
class SyntheticCase:
    data: np.ndarray
    seg: np.ndarray
    properties: dict
    labelmap: np.ndarray


@dataclass
class SynthesisEngine:
    """Holds label maps (preprocessed grid, spatial int16) and lesion sources of the training cases."""

    labelmaps: dict[str, np.ndarray]
    lesion_cases: list[LesionCase]
    renderer: Renderer
    classes: AnatomyClasses
    foreground_label: int = 1
    _healthy: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.labelmaps:
            raise ValueError("SynthesisEngine needs at least one anatomical label map")
        if not self.lesion_cases:
            raise ValueError("SynthesisEngine needs at least one training case with a lesion")
        self.case_ids = sorted(self.labelmaps)

    def healthy_map(self, case_id: str) -> np.ndarray:
        """The case's label map with its own lesion replaced by the nearest other tissue."""
        if case_id not in self._healthy:
            lm = self.labelmaps[case_id]
            lesion = lm == self.classes.lesion
            if lesion.any():
                idx = ndimage.distance_transform_edt(lesion, return_distances=False, return_indices=True)
                lm = lm[tuple(idx)]
            self._healthy[case_id] = lm
        return self._healthy[case_id]

    def make_case(self, rng: np.random.Generator) -> SyntheticCase:
        from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

        anatomy_id = self.case_ids[rng.integers(len(self.case_ids))]
        healthy = self.healthy_map(anatomy_id)
        others = [c for c in self.lesion_cases if c.source != anatomy_id] or self.lesion_cases
        lesion_case = others[rng.integers(len(others))]
        allowed = np.isin(healthy, self.classes.parenchyma)
        lesion = place_lesion_case(lesion_case, allowed, rng)
        labelmap = healthy.copy()
        labelmap[lesion] = self.classes.lesion
        data = self.renderer.render(labelmap, rng).astype(np.float32)
        seg = np.where(healthy < 0, -1, 0).astype(np.int16)
        seg[lesion] = self.foreground_label
        seg = seg[None]
        class_locations = DefaultPreprocessor._sample_foreground_locations(
            seg, [self.foreground_label], seed=int(rng.integers(2**31)))
        properties = {"class_locations": class_locations, "nnsynth_anatomy": anatomy_id,
                      "nnsynth_lesion_source": lesion_case.source}
        return SyntheticCase(data=data, seg=seg.astype(np.int8), properties=properties, labelmap=labelmap)
