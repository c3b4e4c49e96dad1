"""Voxel geometry shared by the lesion sources: bounding boxes, a normalized brain frame, pasting a box.

Kept free of torch so the real-lesion source and the mask-GAN sampler place lesions the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive (lo, hi) voxel corners of a mask's bounding box, or None when empty."""
    idx = np.nonzero(mask)
    if len(idx[0]) == 0:
        return None
    return np.array([i.min() for i in idx]), np.array([i.max() for i in idx])


def lesion_centre(mask: np.ndarray) -> np.ndarray | None:
    """Centre of the bounding box (not of mass), the point a training box is centred on."""
    box = bbox(mask)
    return None if box is None else (box[0] + box[1]) / 2.0


def to_normalized(point: np.ndarray, brain: np.ndarray) -> np.ndarray:
    lo, hi = bbox(brain)
    return (np.asarray(point, float) - lo) / np.maximum(hi - lo, 1)


def from_normalized(u: np.ndarray, brain: np.ndarray) -> np.ndarray:
    lo, hi = bbox(brain)
    return lo + np.asarray(u, float) * np.maximum(hi - lo, 1)


def place_box(box: np.ndarray, shape: Sequence[int], centre: np.ndarray) -> np.ndarray:
    """Full-size mask with the box lesion's own bbox centre at ``centre`` (cut at the volume border)."""
    out = np.zeros(tuple(shape), bool)
    own = lesion_centre(box)
    if own is None:
        return out
    offset = np.rint(np.asarray(centre, float) - own).astype(int)  # box index + offset = volume index
    src, dst = [], []
    for o, b, s in zip(offset, box.shape, shape):
        lo, hi = max(0, o), min(s, o + b)
        if hi <= lo:
            return out
        dst.append(slice(lo, hi))
        src.append(slice(lo - o, hi - o))
    out[tuple(dst)] = box[tuple(src)]
    return out
