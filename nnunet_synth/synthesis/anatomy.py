"""Which label-map value is which tissue, and the healthy version of a label map.

Read from ``dataset.json["anatomical_labels"]`` (the demo cohort and ``nnsynth labelmaps`` write it).
The one definition of "parenchyma" (where a stroke lesion may sit) lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nnunet_synth.errors import NNSynthError

DEFAULT_ANATOMICAL_LABELS = {"background": 0, "csf": 1, "gray_matter": 2, "white_matter": 3, "lesion": 4}
NON_PARENCHYMA = ("csf", "ventric", "skull", "vessel")


@dataclass(frozen=True)
class AnatomyClasses:
    """Label values of the anatomical label maps, by tissue name."""

    labels: dict[str, int]

    @classmethod
    def from_dataset_json(cls, dataset_json: dict) -> AnatomyClasses:
        labels = dataset_json.get("anatomical_labels", DEFAULT_ANATOMICAL_LABELS)
        if "lesion" not in labels or "background" not in labels:
            raise NNSynthError('dataset.json "anatomical_labels" must name at least "background" and "lesion"')
        return cls({str(k): int(v) for k, v in labels.items()})

    @property
    def lesion(self) -> int:
        return self.labels["lesion"]

    @property
    def background(self) -> int:
        return self.labels["background"]

    @property
    def num_classes(self) -> int:
        return max(self.labels.values()) + 1

    @property
    def parenchyma(self) -> tuple[int, ...]:
        """Classes a stroke lesion may occupy: brain tissue, never CSF, ventricles, skull, vessels or background."""
        names = [n for n in self.labels if n not in ("background", "lesion")
                 and not any(t in n for t in NON_PARENCHYMA)]
        return tuple(self.labels[n] for n in names)


def healthy_map(labelmap: np.ndarray, lesion_value: int | None) -> np.ndarray:
    """The label map with its lesion voxels replaced by the nearest non-lesion label (a simple inpainting)."""
    lesion = labelmap == lesion_value if lesion_value is not None else None
    if lesion is None or not lesion.any():
        return labelmap
    idx = ndimage.distance_transform_edt(lesion, return_distances=False, return_indices=True)
    return labelmap[tuple(idx)]
