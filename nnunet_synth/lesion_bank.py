"""Real lesions as templates: connected components cut from training cases, re-placed elsewhere.

Until a mask GAN is trained this is the engine's lesion source. Each component remembers where it
sat relative to its brain's bounding box, so placement keeps a realistic location (a cortical MCA
infarct stays lateral, a lacune stays deep) while the shape is mirrored and moved a little.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class LesionComponent:
    mask: np.ndarray            # bool, cropped to the component's bounding box
    rel_centre: np.ndarray      # centre in the source brain's bounding box, each axis in [0, 1]
    source: str


@dataclass(frozen=True)
class LesionCase:
    """All components of one real case: drawn together so lesion counts stay realistic."""

    components: tuple[LesionComponent, ...]
    source: str


def brain_bbox(brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coords = np.argwhere(brain)
    if coords.size == 0:
        return np.zeros(brain.ndim, int), np.array(brain.shape)
    return coords.min(0), coords.max(0) + 1


def extract_lesion_case(case_id: str, seg: np.ndarray, brain: np.ndarray, lesion_label: int = 1,
                        min_voxels: int = 1) -> LesionCase | None:
    """Components of the lesion in seg (spatial array); None for a lesion-free case."""
    lesion = np.asarray(seg) == lesion_label
    if not lesion.any():
        return None
    lo, hi = brain_bbox(brain)
    size = np.maximum(hi - lo, 1)
    labels = cc3d.connected_components(lesion.astype(np.uint8), connectivity=26)
    components = []
    for label_id, slices in enumerate(ndimage.find_objects(labels), start=1):
        if slices is None:
            continue
        comp = labels[slices] == label_id
        if comp.sum() < min_voxels:
            continue
        centre = np.array([(s.start + s.stop) / 2 for s in slices])
        components.append(LesionComponent(mask=comp, rel_centre=(centre - lo) / size, source=case_id))
    return LesionCase(tuple(components), case_id) if components else None


def place_lesion_case(lesion_case: LesionCase, allowed: np.ndarray, rng: np.random.Generator,
                      jitter: float = 0.05, min_kept: float = 0.5, tries: int = 8) -> np.ndarray:
    """Paste the case's components into a new brain; voxels outside `allowed` are dropped.

    A component first goes to its original relative position (plus jitter); if less than
    `min_kept` of it would land inside allowed tissue, random allowed centres are tried.
    """
    out = np.zeros(allowed.shape, bool)
    lo, hi = brain_bbox(allowed)
    size = hi - lo
    candidates = np.argwhere(allowed)
    if candidates.size == 0:
        return out
    for comp in lesion_case.components:
        mask = comp.mask
        for axis in range(mask.ndim):
            if rng.random() < 0.5:
                mask = np.flip(mask, axis)
        best, best_kept = None, -1.0
        for attempt in range(tries):
            if attempt == 0:
                rel = comp.rel_centre + rng.normal(0, jitter, comp.rel_centre.shape)
                centre = lo + np.clip(rel, 0, 1) * size
            else:
                centre = candidates[rng.integers(len(candidates))].astype(float)
            pasted = _paste(mask, centre, allowed.shape) & allowed
            kept = pasted.sum() / max(mask.sum(), 1)
            if kept > best_kept:
                best, best_kept = pasted, kept
            if kept >= min_kept:
                break
        out |= best
    return out


def _paste(mask: np.ndarray, centre: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """mask placed with its box centre at `centre` in an empty array of `shape` (clipped at edges)."""
    canvas = np.zeros(shape, bool)
    start = np.round(centre - np.array(mask.shape) / 2).astype(int)
    dst, src = [], []
    for s, m, n in zip(start, mask.shape, shape):
        a, b = max(s, 0), min(s + m, n)
        if a >= b:
            return canvas
        dst.append(slice(a, b))
        src.append(slice(a - s, b - s))
    canvas[tuple(dst)] = mask[tuple(src)]
    return canvas
