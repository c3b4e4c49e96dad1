"""The inpainting engine: a real training case, image included, with a new lesion written into it.

One case, step by step:

1. pick a host: one of the fold's training cases, its preprocessed image and segmentation as nnU-Net
   loads them (``TrainingCases.load``), and its anatomical label map;
2. draw a new lesion from the lesion source (real components of another training case, or the mask GAN)
   inside the host's parenchyma, at least ``keep_away`` voxels from the host's own lesion (lesion-free
   hosts are welcome);
3. paint it into the host image with a lesion painter (the fitted lesion contrast, or a translator's
   lesion difference); everything outside the lesion's soft edge, outside nnU-Net's crop mask and on the
   host's own lesion stays the host's own voxels.

The host's own lesion stays and stays labelled: the segmentation is the union. The result is a
:class:`SyntheticCase` like the whole-scan engine's, so feeding, export and pictures take either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from nnunet_synth.synthesis.anatomy import AnatomyClasses
from nnunet_synth.synthesis.engine import LesionSource, SyntheticCase


class LesionPainter(Protocol):
    num_channels: int

    def paint(self, image: np.ndarray, labelmap: np.ndarray, lesion: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        """The host image (C, *S) with the lesion mask painted in (a new array)."""
        ...


@dataclass
class InpaintingEngine:
    """The fold's training cases as hosts, a lesion source and a lesion painter."""

    labelmaps: dict[str, np.ndarray]  # spatial int16 on the preprocessed grid, -1 outside the crop mask
    load_host: Callable[[str], tuple[np.ndarray, np.ndarray]]  # case id -> (image (C, *S), seg (*S))
    lesion_source: LesionSource
    painter: LesionPainter
    classes: AnatomyClasses
    foreground_label: int = 1
    keep_away: int = 2  # voxels between a new lesion and the host's own

    def __post_init__(self) -> None:
        if not self.labelmaps:
            raise ValueError("InpaintingEngine needs at least one training case")
        self.case_ids = sorted(self.labelmaps)

    def make_case(self, rng: np.random.Generator) -> SyntheticCase:
        host = self.case_ids[rng.integers(len(self.case_ids))]
        image, seg = self.load_host(host)
        labelmap = self.labelmaps[host]
        own = np.asarray(seg) == self.foreground_label
        blocked = ndimage.binary_dilation(own, iterations=self.keep_away) if own.any() else own
        allowed = np.isin(labelmap, self.classes.parenchyma) & ~blocked
        brain = labelmap > self.classes.background
        new, lesion_source = self.lesion_source.draw(host, brain, allowed, rng)
        new = new & allowed
        image = np.asarray(image, np.float32)
        painted = self.painter.paint(image, labelmap, new, rng).astype(np.float32)
        # whatever the painter does: outside nnU-Net's crop mask and on the host's own lesion the voxels stay
        # the host's (a halo past the brain edge would be a seam; the own lesion keeps its real appearance)
        keep = (labelmap < 0) | own
        painted[:, keep] = image[:, keep]
        out_map = labelmap.copy()
        out_map[new] = self.classes.lesion
        out_seg = np.array(seg, np.int16, copy=True)  # the host's own labels (an ignore label too) stay
        out_seg[new] = self.foreground_label
        provenance = {"anatomy": host, "lesion_source": lesion_source, "host": "real image",
                      "sample_seed": int(rng.integers(2**31))}
        return SyntheticCase(image=painted, lesion=own | new, labelmap=out_map, provenance=provenance, painted=new,
                             seg=out_seg)
