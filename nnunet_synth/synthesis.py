"""The synthesis engine: healthy anatomy + lesion -> (image, segmentation) in preprocessed space.

One synthetic case: take a training case's anatomical label map, fill its own lesion with the
surrounding tissue (nearest non-lesion label), write in lesions drawn from a lesion source
(real components of another training case, or the mask GAN), render the map with a renderer
(the Gaussian mixture, or a pix2pix / SPADE translator) and return what nnU-Net's loader expects from
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


class LesionSource(Protocol):
    def draw(self, anatomy_id: str, brain: np.ndarray, allowed: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """A boolean lesion mask inside `allowed` for the host, and a name for where it came from."""
        ...


@dataclass
class RealLesionSource:
    """Lesions of another real training case, re-placed at their relative brain position."""

    cases: list[LesionCase]

    def __post_init__(self) -> None:
        if not self.cases:
            raise ValueError("no training case with a lesion to take lesions from")

    def draw(self, anatomy_id, brain, allowed, rng):
        others = [c for c in self.cases if c.source != anatomy_id] or self.cases
        case = others[rng.integers(len(others))]
        return place_lesion_case(case, allowed, rng), case.source


@dataclass
class MaskGANLesionSource:
    """New lesion shapes from the mask GAN (nnunet_synth.lesion_sampling.MaskSampler), placed by its prior."""

    sampler: object

    def draw(self, anatomy_id, brain, allowed, rng):
        sample = self.sampler.sample_case(brain, parenchyma=allowed, seed=rng)
        return sample.mask & allowed, "maskgan"


@dataclass
class SyntheticCase:
    data: np.ndarray
    seg: np.ndarray
    properties: dict
    labelmap: np.ndarray


@dataclass
class SynthesisEngine:
    """Holds label maps (preprocessed grid, spatial int16) of the training cases, a lesion source and a renderer."""

    labelmaps: dict[str, np.ndarray]
    lesion_source: LesionSource
    renderer: Renderer
    classes: AnatomyClasses
    foreground_label: int = 1
    _healthy: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.labelmaps:
            raise ValueError("SynthesisEngine needs at least one anatomical label map")
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
        allowed = np.isin(healthy, self.classes.parenchyma)
        brain = healthy > self.classes.background
        lesion, lesion_source = self.lesion_source.draw(anatomy_id, brain, allowed, rng)
        labelmap = healthy.copy()
        labelmap[lesion] = self.classes.lesion
        data = self.renderer.render(labelmap, rng).astype(np.float32)
        seg = np.where(healthy < 0, -1, 0).astype(np.int16)
        seg[lesion] = self.foreground_label
        seg = seg[None]
        class_locations = DefaultPreprocessor._sample_foreground_locations(
            seg, [self.foreground_label], seed=int(rng.integers(2**31)))
        properties = {"class_locations": class_locations, "nnsynth_anatomy": anatomy_id,
                      "nnsynth_lesion_source": lesion_source}
        return SyntheticCase(data=data, seg=seg.astype(np.int8), properties=properties, labelmap=labelmap)
