"""The synthesis engine: healthy anatomy + lesion + appearance -> one synthetic case in preprocessed space.

One synthetic case, step by step:

1. pick a host: one of the fold's training cases, by its anatomical label map;
2. heal it: its own lesion is filled with the surrounding tissue (nearest non-lesion label);
3. draw a lesion from the lesion source (real components of another training case, or the mask GAN),
   restricted to parenchyma (never CSF or background);
4. write the lesion class into the map and render the map with the renderer (the Gaussian mixture, or a
   pix2pix / SPADE translator) into image channels in nnU-Net's normalized space.

The engine knows nothing of nnU-Net's loader: ``feeding.nnunet_format`` turns a case into what
``load_case`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from nnunet_synth.synthesis.anatomy import AnatomyClasses, healthy_map


class Renderer(Protocol):
    num_channels: int

    def render(self, labelmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Image channels (C, *shape) float32 for a label map (-1 outside nnU-Net's crop mask)."""
        ...


class LesionSource(Protocol):
    def draw(self, anatomy_id: str, brain: np.ndarray, allowed: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """A boolean lesion mask inside `allowed` for the host, and a name for where it came from."""
        ...


@dataclass
class SyntheticCase:
    """One generated case on the preprocessed grid of the dataset."""

    image: np.ndarray  # (C, *shape) float32, nnU-Net-normalized intensities
    lesion: np.ndarray  # (*shape) bool
    labelmap: np.ndarray  # (*shape) int16 anatomical map with the lesion class, -1 outside the crop mask
    provenance: dict[str, Any]  # host anatomy, lesion source, and a seed for downstream sampling
    painted: np.ndarray | None = None  # (*shape) bool, the new lesion only (None: all of ``lesion`` is new)
    seg: np.ndarray | None = None  # (*shape) int16 host segmentation with the new lesion (inpainting), see below

    @property
    def new_lesion(self) -> np.ndarray:
        """The generated lesion (for an inpainted case without the host's own)."""
        return self.lesion if self.painted is None else self.painted

    def segmentation(self, foreground_label: int = 1) -> np.ndarray:
        """nnU-Net's segmentation (*shape) int16: -1 outside the crop mask, 0 background, the lesion label.

        An inpainted case keeps its real host's segmentation as nnU-Net loaded it (an ignore label, other
        classes) with the new lesion written in; a whole-scan case builds it from the lesion and label map."""
        if self.seg is not None:
            return np.array(self.seg, np.int16, copy=True)
        seg = np.where(self.labelmap < 0, -1, 0).astype(np.int16)
        seg[self.lesion] = foreground_label
        return seg


@dataclass
class SynthesisEngine:
    """Label maps of the fold's training cases (spatial int16, preprocessed grid), a lesion source and a renderer."""

    labelmaps: dict[str, np.ndarray]
    lesion_source: LesionSource
    renderer: Renderer
    classes: AnatomyClasses
    _healthy: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.labelmaps:
            raise ValueError("SynthesisEngine needs at least one anatomical label map")
        self.case_ids = sorted(self.labelmaps)

    def healthy_map(self, case_id: str) -> np.ndarray:
        """The case's label map with its own lesion replaced by the nearest other tissue (cached)."""
        if case_id not in self._healthy:
            self._healthy[case_id] = healthy_map(self.labelmaps[case_id], self.classes.lesion)
        return self._healthy[case_id]

    def make_case(self, rng: np.random.Generator) -> SyntheticCase:
        anatomy_id = self.case_ids[rng.integers(len(self.case_ids))]
        healthy = self.healthy_map(anatomy_id)
        allowed = np.isin(healthy, self.classes.parenchyma)
        brain = healthy > self.classes.background
        lesion, lesion_source = self.lesion_source.draw(anatomy_id, brain, allowed, rng)
        labelmap = healthy.copy()
        labelmap[lesion] = self.classes.lesion
        image = self.renderer.render(labelmap, rng).astype(np.float32)
        provenance = {"anatomy": anatomy_id, "lesion_source": lesion_source,
                      "sample_seed": int(rng.integers(2**31))}
        return SyntheticCase(image=image, lesion=lesion, labelmap=labelmap, provenance=provenance)
