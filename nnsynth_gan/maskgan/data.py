"""Lesion masks of a fold's training cases, read from nnU-Net's preprocessed dataset.

Only the training cases of the requested fold are read (``splits_final.json``, created exactly as
``nnUNetTrainer.do_split`` would when it is missing), so the GAN never sees a validation lesion.
Each case's lesion (all foreground labels) is split into clusters (components closer than
``cluster_mm``); each cluster is cut out as a box centred on its bounding-box centre, and that centre,
expressed in the case's normalized brain box, feeds the location prior. The number of clusters per
case is kept too, so generated cases carry as many lesions as real ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from nnunet_synth.errors import NNSynthError
from nnunet_synth.lesions.geometry import bbox, lesion_centre, to_normalized
from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset

MIN_LESION_VOXELS = 20  # the seed paper trained only on masks with >= 20 lesion voxels
CLUSTER_MM = 10.0  # lesion components closer than this form one training sample


def iter_segmentations(pre: PreprocessedDataset, case_ids: Sequence[str]
                       ) -> Iterator[tuple[str, np.ndarray, dict]]:
    """(id, seg (X, Y, Z) int, properties) per case; -1 marks nnU-Net's outside-nonzero region."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = str(pre.data_folder)
    dataset = infer_dataset_class(folder)(folder, identifiers=list(case_ids))
    for case_id in case_ids:
        _, seg, _, properties = dataset.load_case(case_id)
        yield case_id, np.asarray(seg[0]).astype(np.int16), properties


@dataclass
class LesionRecord:
    """One lesion cluster of a training case: tight crop, where it sits, and how big it is."""

    case_id: str
    lesion: np.ndarray  # bool, cropped to the cluster's bounding box
    centre: np.ndarray  # bbox centre, voxel coordinates of the case
    centre_norm: np.ndarray  # the same in the normalized brain box, [0, 1]^3
    volume_ml: float

    @property
    def extent(self) -> tuple[int, ...]:
        return self.lesion.shape


def lesion_clusters(lesion: np.ndarray, spacing: Sequence[float], cluster_mm: float) -> list[np.ndarray]:
    """Split a case's lesion into clusters: components closer than ``cluster_mm`` stay together.

    Stroke cases often hold several infarcts in different territories; each becomes its own training
    sample and is placed on its own, while satellites next to an infarct stay with it.
    """
    if cluster_mm > 0:
        near = ndimage.distance_transform_edt(~lesion, sampling=spacing) <= cluster_mm / 2
    else:
        near = lesion
    labels, _ = ndimage.label(near, structure=np.ones((3, 3, 3), bool))
    labels[~lesion] = 0
    return [labels == k for k in np.unique(labels[labels > 0])]


def load_lesion_records(pre: PreprocessedDataset, case_ids: Sequence[str], cluster_mm: float = CLUSTER_MM
                        ) -> list[LesionRecord]:
    """One record per lesion cluster of each case (brain = seg >= 0, lesion = seg > 0)."""
    voxel_ml = math.prod(pre.spacing) / 1000.0
    records = []
    for case_id, seg, _ in iter_segmentations(pre, case_ids):
        lesion = seg > 0
        if not lesion.any():
            continue
        brain = seg >= 0
        for cluster in lesion_clusters(lesion, pre.spacing, cluster_mm):
            lo, hi = bbox(cluster)
            crop = cluster[tuple(slice(a, b + 1) for a, b in zip(lo, hi))]
            centre = lesion_centre(cluster)
            records.append(LesionRecord(case_id, crop, centre, to_normalized(centre, brain),
                                        float(cluster.sum()) * voxel_ml))
    return records


def choose_box_shape(records: Sequence[LesionRecord], limit: Sequence[int], quantile: float = 1.0,
                     margin: int = 2, multiple: int = 8, minimum: int = 16) -> tuple[int, int, int]:
    """Per axis: the ``quantile`` of lesion extents plus a margin, rounded up, within [minimum, limit].

    The default holds every training lesion: a lesion cut by the box would teach the GAN flat faces.
    Only lesions larger than ``limit`` (the nnU-Net patch size) are cut; the training log reports how
    much lesion volume that loses.
    """
    if not records:
        raise NNSynthError("no lesions to size the box from")
    ext = np.array([r.extent for r in records])
    out = []
    for axis in range(3):
        want = float(np.quantile(ext[:, axis], quantile)) + 2 * margin
        size = max(minimum, int(math.ceil(want / multiple) * multiple))
        out.append(min(size, max(int(limit[axis]), minimum)))
    return tuple(out)


def crop_to_box(lesion: np.ndarray, box_shape: Sequence[int]) -> np.ndarray:
    """Centre a tight lesion crop in a box of ``box_shape`` (pad, or cut symmetric overhang)."""
    out = np.zeros(tuple(box_shape), bool)
    src, dst = [], []
    for have, want in zip(lesion.shape, box_shape):
        if have <= want:
            start = (want - have) // 2
            src.append(slice(0, have))
            dst.append(slice(start, start + have))
        else:
            start = (have - want) // 2
            src.append(slice(start, start + want))
            dst.append(slice(0, want))
    out[tuple(dst)] = lesion[tuple(src)]
    return out


class MaskTrainingSet:
    """Lesion boxes as a (N, 1, *box) tensor in {-1, 1} with their volumes, centres and counts per case."""

    def __init__(self, records: Sequence[LesionRecord], box_shape: Sequence[int], voxel_ml: float,
                 min_voxels: int = MIN_LESION_VOXELS) -> None:
        boxes, kept = [], []
        self.total_voxels = 0
        kept_voxels = 0
        for r in records:
            box = crop_to_box(r.lesion, box_shape)
            if box.sum() < min_voxels:
                continue
            boxes.append(box)
            kept.append(r)
            self.total_voxels += int(r.lesion.sum())
            kept_voxels += int(box.sum())
        if not boxes:
            raise NNSynthError(f"no training lesion has >= {min_voxels} voxels in a {tuple(box_shape)} box")
        self.records = kept
        self.box_shape = tuple(int(s) for s in box_shape)
        self.skipped = len(records) - len(kept)
        self.coverage = kept_voxels / max(self.total_voxels, 1)  # share of lesion voxels inside the boxes
        masks = torch.from_numpy(np.stack(boxes)).float()[:, None]
        self.masks = masks * 2 - 1
        self.volumes_ml = masks.flatten(1).sum(1) * voxel_ml
        self.centres = np.stack([r.centre_norm for r in kept])
        counts: dict[str, int] = {}
        for r in kept:
            counts[r.case_id] = counts.get(r.case_id, 0) + 1
        self.lesions_per_case = sorted(counts.values())  # over cases with at least one kept lesion

    def __len__(self) -> int:
        return len(self.records)

    def batch(self, size: int, generator: torch.Generator, augment: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random boxes (with random flips along every axis when ``augment``) and their volumes."""
        idx = torch.randint(len(self), (size,), generator=generator)
        x = self.masks[idx].clone()
        if augment:
            flips = torch.rand(size, 3, generator=generator) < 0.5
            for i in range(size):
                dims = [1 + a for a in range(3) if flips[i, a]]  # x[i] is (1, X, Y, Z)
                if dims:
                    x[i] = x[i].flip(dims)
        return x, self.volumes_ml[idx]
