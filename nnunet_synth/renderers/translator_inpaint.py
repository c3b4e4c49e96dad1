"""Appearance model B of lesion inpainting: a learned translator's lesion, without its domain gap.

The pix2pix / SPADE translator (the seed paper's renderer) renders the host's label map twice, around the
new lesion only: once with the lesion class written in, once without. Their difference is what the
translator learned a lesion looks like against this tissue; it is added to the real host image inside the
lesion and a fading margin around it. The rest of the scan stays the host's own, so the translator's
global look (smoothness, checkerboard, wrong noise) never reaches the network, while its lesion
appearance does. Only a box around the lesion (plus context for the translator's receptive field) is
rendered, both times with the same random state, so the difference holds the lesion and not the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_synth.renderers.lesion_contrast import Sampling, signed_distance
from nnunet_synth.renderers.translator import TranslatorRenderer


@dataclass
class TranslatorLesionPainter:
    renderer: TranslatorRenderer
    lesion_value: int  # the lesion class of the label maps
    margin: float = 3.0  # voxels outside the lesion over which the difference fades to 0
    context: int = 16  # voxels of label map around the lesion the translator sees
    sampling: Sampling = None  # voxel sides over the finest (the margin counts finest voxels), voxel_sampling

    @property
    def num_channels(self) -> int:
        return self.renderer.num_channels

    def box(self, lesion: np.ndarray) -> tuple[slice, ...]:
        idx = np.argwhere(lesion)
        lo = np.maximum(idx.min(0) - self.context, 0)
        hi = np.minimum(idx.max(0) + self.context + 1, lesion.shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))

    def difference(self, labelmap: np.ndarray, lesion: np.ndarray, seed: int) -> tuple[tuple[slice, ...], np.ndarray]:
        """(box, rendered with lesion - rendered without) in the box around the lesion."""
        box = self.box(lesion)
        without = labelmap[box]
        with_lesion = without.copy()
        with_lesion[lesion[box]] = self.lesion_value
        a = self.renderer.render(with_lesion, np.random.default_rng(seed))
        b = self.renderer.render(without, np.random.default_rng(seed))
        return box, a - b

    def paint(self, image: np.ndarray, labelmap: np.ndarray, lesion: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
        out = np.array(image, np.float32, copy=True)
        if not lesion.any():
            return out
        box, diff = self.difference(labelmap, lesion, int(rng.integers(2**31)))
        sdist = signed_distance(lesion[box], self.sampling)
        weight = np.clip(1.0 + np.minimum(sdist, 0.0) / self.margin, 0.0, 1.0)  # 1 inside, 0 beyond the margin
        inside_crop = labelmap[box] >= 0
        out[(slice(None), *box)] += diff * (weight * inside_crop)[None]
        return out

    def describe(self) -> str:
        return f"{self.renderer.kind} lesion difference added to the real host (margin {self.margin:g} voxels)"
