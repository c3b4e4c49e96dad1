"""Resampling in physical space with SimpleITK, starting from nibabel arrays and RAS affines.

Files are read once with nibabel (one reader, one affine convention); SimpleITK only resamples.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image with the geometry that the RAS affine describes (ITK works in LPS)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    _set_geometry(image, affine)
    return image


def _set_geometry(image: sitk.Image, affine: np.ndarray) -> None:
    linear = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (linear / spacing).ravel()])
    image.SetOrigin([float(v) for v in _RAS_TO_LPS @ affine[:3, 3]])


def resample_onto(data: np.ndarray, affine: np.ndarray, ref_shape: tuple[int, ...], ref_affine: np.ndarray,
                  nearest: bool = False) -> np.ndarray:
    """data (on its own grid) resampled onto the reference grid: linear for images, nearest for labels.

    Voxels outside the source field of view become 0.
    """
    source = to_sitk(data if nearest else data.astype(np.float32, copy=False), affine)
    reference = sitk.Image([int(s) for s in ref_shape], source.GetPixelID())
    _set_geometry(reference, ref_affine)
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(source, reference, sitk.Transform(), interpolator, 0.0,
                        source.GetPixelID())
    return sitk.GetArrayFromImage(out).T
