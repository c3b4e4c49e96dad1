"""Arrays on nnU-Net's preprocessed grid written back as NIfTI files a viewer shows the right way round.

Preprocessed arrays are in nnU-Net's transposed axis order (``transpose_forward`` of SimpleITK's z, y, x)
at the target spacing. Writing one back needs the inverse transpose and the spacing in that order; the
export (synthetic cases as a raw dataset) and ``nnsynth preview`` both go through here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset


def to_raw_axes(array: np.ndarray, pre: PreprocessedDataset) -> np.ndarray:
    """(X, Y, Z) preprocessed-space array -> SimpleITK's (z, y, x) axis order of the raw files."""
    return np.asarray(array).transpose(pre.plans_manager.transpose_backward)


def write_preprocessed_volume(array: np.ndarray, pre: PreprocessedDataset, path: Path, dtype) -> Path:
    """One spatial array of the preprocessed grid as NIfTI at the target spacing (origin 0, identity direction)."""
    import SimpleITK as sitk

    spacing_raw_order = [pre.spacing[i] for i in pre.plans_manager.transpose_backward]
    image = sitk.GetImageFromArray(to_raw_axes(array, pre).astype(dtype, copy=False))
    image.SetSpacing([float(s) for s in spacing_raw_order[::-1]])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)
    return Path(path)
