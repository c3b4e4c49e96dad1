"""Real lesions as templates: connected components cut from training cases, re-placed elsewhere.

The default lesion source of the synthesis engine (it needs no trained generator). Each component remembers where it
sat relative to its brain's bounding box, so placement keeps a realistic location (a cortical MCA
infarct stays lateral, a lacune stays deep) while the shape is mirrored and moved a little.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

from nnunet_synth.errors import NNSynthError
from nnunet_synth.lesions.geometry import from_normalized, lesion_centre, place_box, to_normalized


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


def extract_lesion_case(case_id: str, seg: np.ndarray, brain: np.ndarray, lesion_label: int = 1,
                        min_voxels: int = 1) -> LesionCase | None:
    """Components of the lesion in seg (spatial array); None for a lesion-free case."""
    lesion = np.asarray(seg) == lesion_label
    if not lesion.any():
        return None
    frame = brain if brain.any() else np.ones_like(brain, bool)
    labels = cc3d.connected_components(lesion.astype(np.uint8), connectivity=26)
    components = []
    for label_id, slices in enumerate(ndimage.find_objects(labels), start=1):
        if slices is None:
            continue
        comp = labels[slices] == label_id
        if comp.sum() < min_voxels:
            continue
        offset = np.array([s.start for s in slices])
        rel_centre = to_normalized(lesion_centre(comp) + offset, frame)
        components.append(LesionComponent(mask=comp, rel_centre=rel_centre, source=case_id))
    return LesionCase(tuple(components), case_id) if components else None


def place_lesion_case(lesion_case: LesionCase, allowed: np.ndarray, rng: np.random.Generator,
                      jitter: float = 0.05, min_kept: float = 0.5, tries: int = 8) -> np.ndarray:
    """Paste the case's components into a new brain; voxels outside `allowed` are dropped.

    A component first goes to its original relative position (plus jitter); if less than
    `min_kept` of it would land inside allowed tissue, random allowed centres are tried.
    """
    out = np.zeros(allowed.shape, bool)
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
                centre = from_normalized(np.clip(rel, 0, 1), allowed)
            else:
                centre = candidates[rng.integers(len(candidates))].astype(float)
            pasted = place_box(mask, allowed.shape, centre) & allowed
            kept = pasted.sum() / max(mask.sum(), 1)
            if kept > best_kept:
                best, best_kept = pasted, kept
            if kept >= min_kept:
                break
        out |= best
    return out


@dataclass
class RealLesionSource:
    """Lesions of another real training case of the fold, re-placed at their relative brain position."""

    cases: list[LesionCase]

    def __post_init__(self) -> None:
        if not self.cases:
            raise NNSynthError("none of the fold's training cases has a lesion to take lesions from")

    @classmethod
    def from_training_cases(cls, cases: Iterable[tuple[str, np.ndarray, np.ndarray]],
                            lesion_label: int = 1) -> RealLesionSource:
        """From (case id, seg, parenchyma mask) of the fold's training cases; lesion-free cases are skipped."""
        found = (extract_lesion_case(case, seg, parenchyma, lesion_label) for case, seg, parenchyma in cases)
        return cls([c for c in found if c is not None])

    def draw(self, anatomy_id: str, brain: np.ndarray, allowed: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, str]:
        others = [c for c in self.cases if c.source != anatomy_id] or self.cases
        case = others[rng.integers(len(others))]
        return place_lesion_case(case, allowed, rng), case.source
