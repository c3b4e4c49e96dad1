"""(Label map, image) pairs of a fold's training cases, and random crops of them for the translators.

Images are nnU-Net's preprocessed cases (``load_case``: target spacing, nnU-Net's normalization);
label maps are the cases' anatomical maps pushed through nnU-Net's own preprocessing
(``nnunet_synth.nnunet_io.labelmap_grid``), so both sit on the same voxel grid and a translator
learns to produce exactly what nnU-Net's loader serves. Only the fold's training cases are read.

Crops are centred on a random voxel inside the crop mask, or with probability ``lesion_fraction`` on a
lesion voxel: lesions cover well under 1% of the brain, and without this oversampling (nnU-Net does the
same for its foreground) the translators would hardly ever see one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.labelmap_grid import preprocessed_labelmaps
from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset
from nnunet_synth.renderers.translator import OUTSIDE, TranslatorSpace
from nnunet_synth.synthesis.anatomy import AnatomyClasses

INTENSITY_PERCENTILES = (0.01, 99.99)  # wide, so bright lesion cores (well under 1% of voxels) are not clipped
MAX_VOXELS_PER_CASE = 200_000  # subsample for the percentile estimate


@dataclass
class TranslatorCase:
    """One preprocessed case: image (C, X, Y, Z) float32 and label map (X, Y, Z) int16, -1 outside."""

    case_id: str
    image: np.ndarray
    labelmap: np.ndarray
    inside: np.ndarray  # flat indices of voxels inside the crop mask (labelmap >= 0)
    lesion: np.ndarray  # flat indices of lesion voxels

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labelmap.shape)


def anatomy_classes(pre: PreprocessedDataset) -> AnatomyClasses:
    return AnatomyClasses.from_dataset_json(pre.dataset_json)


def load_cases(pre: PreprocessedDataset, case_ids: Sequence[str]) -> list[TranslatorCase]:
    """Images and label maps of ``case_ids`` on nnU-Net's preprocessed grid (label maps cached on disk)."""
    classes = anatomy_classes(pre)
    labelmaps = preprocessed_labelmaps(pre, list(case_ids))
    dataset = pre.load_dataset(list(case_ids))
    cases = []
    for case_id in map(str, case_ids):  # nnU-Net's split helper hands out numpy strings
        data, _, _, _ = dataset.load_case(case_id)
        image = np.asarray(data, dtype=np.float32)
        lm = np.asarray(labelmaps[case_id])[0].astype(np.int16)
        if lm.shape != image.shape[1:]:
            raise NNSynthError(f"label map of {case_id} has shape {lm.shape} on the preprocessed grid but the "
                               f"image has {image.shape[1:]}: delete {pre.root}/nnsynth_labelmaps_* and retry")
        flat = lm.reshape(-1)
        cases.append(TranslatorCase(case_id, image, lm, np.flatnonzero(flat >= 0),
                                    np.flatnonzero(flat == classes.lesion)))
    return cases


def fit_space(cases: Sequence[TranslatorCase], classes: AnatomyClasses, seed: int = 0) -> TranslatorSpace:
    """Per-channel intensity range of the training cases, and nnU-Net's constant outside value if it has one."""
    if not cases:
        raise NNSynthError("no training cases to fit the translator's intensity range on")
    rng = np.random.default_rng(seed)
    num_channels = cases[0].image.shape[0]
    samples, outside = [], []
    for case in cases:
        flat = case.image.reshape(num_channels, -1)
        idx = case.inside
        if idx.size > MAX_VOXELS_PER_CASE:
            idx = rng.choice(idx, MAX_VOXELS_PER_CASE, replace=False)
        samples.append(flat[:, idx])
        out_idx = np.flatnonzero(case.labelmap.reshape(-1) == OUTSIDE)
        if out_idx.size:
            outside.append(flat[:, out_idx[:MAX_VOXELS_PER_CASE]])
    values = np.concatenate(samples, axis=1)
    low, high = np.percentile(values, INTENSITY_PERCENTILES, axis=1)
    outside_value = None
    if outside:
        out = np.concatenate(outside, axis=1)
        if np.all(out.max(axis=1) - out.min(axis=1) < 1e-6):  # nnU-Net wrote a constant (use_mask_for_norm)
            outside_value = out[:, 0].tolist()
            low, high = np.minimum(low, out[:, 0]), np.maximum(high, out[:, 0])
    high = np.maximum(high, low + 1e-3)
    return TranslatorSpace(labels=classes.labels, low=low.tolist(), high=high.tolist(), outside_value=outside_value)


def crop_or_pad(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """``array[..., start:start + size]`` over the last three axes; parts outside the array get ``fill``."""
    lead = array.shape[:-3]
    out = np.full((*lead, *size), fill, dtype=array.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, array.shape[-3:]):
        lo, hi = max(s, 0), min(s + n, dim)
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    out[(..., *dst)] = array[(..., *src)]
    return out


class TranslatorTrainingSet:
    """Random crops of (one-hot label map, image in [-1, 1]) pairs, drawn with a torch.Generator."""

    def __init__(self, cases: Sequence[TranslatorCase], space: TranslatorSpace, crop: Sequence[int],
                 lesion_fraction: float = 0.33) -> None:
        if not cases:
            raise NNSynthError("no training cases")
        self.cases = list(cases)
        self.space = space
        self.crop = tuple(int(c) for c in crop)
        self.lesion_fraction = float(lesion_fraction)
        self.lesion_cases = [i for i, c in enumerate(self.cases) if c.lesion.size]
        fill = space.outside_value if space.outside_value is not None else [0.0] * space.num_channels
        self._fill = np.asarray(fill, np.float32)

    def __len__(self) -> int:
        return len(self.cases)

    def _centre(self, generator: torch.Generator) -> tuple[TranslatorCase, np.ndarray]:
        if self.lesion_cases and torch.rand((), generator=generator).item() < self.lesion_fraction:
            case = self.cases[self.lesion_cases[int(torch.randint(len(self.lesion_cases), (), generator=generator))]]
            pool = case.lesion
        else:
            case = self.cases[int(torch.randint(len(self.cases), (), generator=generator))]
            pool = case.inside if case.inside.size else np.arange(case.labelmap.size)
        flat = int(pool[int(torch.randint(len(pool), (), generator=generator))])
        return case, np.array(np.unravel_index(flat, case.shape))

    def sample(self, generator: torch.Generator, augment: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One crop: (label map (*crop) int16, image (C, *crop) float32 normalized), randomly flipped."""
        case, centre = self._centre(generator)
        start = [int(c) - n // 2 for c, n in zip(centre, self.crop)]
        # keep the crop inside the volume where the volume is large enough
        start = [min(max(s, 0), max(dim - n, 0)) if dim >= n else s for s, n, dim in zip(start, self.crop,
                                                                                         case.shape)]
        lm = crop_or_pad(case.labelmap, start, self.crop, OUTSIDE)
        image = np.stack([crop_or_pad(case.image[c], start, self.crop, float(self._fill[c]))
                          for c in range(case.image.shape[0])])
        if augment:
            flips = (torch.rand(3, generator=generator) < 0.5).tolist()
            axes = [a for a in range(3) if flips[a]]
            if axes:
                lm = np.flip(lm, axes)
                image = np.flip(image, [a + 1 for a in axes])
        return np.ascontiguousarray(lm), np.ascontiguousarray(image)

    def batch(self, size: int, generator: torch.Generator, augment: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(one-hot labels (N, K + 1, *crop), images in [-1, 1] (N, C, *crop), label maps (N, *crop))."""
        pairs = [self.sample(generator, augment) for _ in range(size)]
        labelmaps = torch.from_numpy(np.stack([p[0] for p in pairs]).astype(np.int64))
        images = torch.from_numpy(np.stack([p[1] for p in pairs]))
        return self.space.encode(labelmaps), self.space.to_unit(images), labelmaps
