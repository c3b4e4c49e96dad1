"""Subject anatomy for the demo cohort: the MNI152 2009 template warped into a new head per subject.

Every subject gets a random head pose and size (affine jitter), a smooth non-linear displacement
and a variable ventricle size. The tissue probability maps are sampled straight onto the subject's
output grid in one map_coordinates pass (no 1 mm warp followed by a downsampling), which keeps a
40-subject cohort at 2 mm within a couple of minutes on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from scipy import ndimage

from nnunet_synth.errors import NNSynthError

Spacing = tuple[float, float, float]

# Classes of the healthy anatomical label map (values match raw_dataset.ANATOMICAL_LABELS).
BACKGROUND, CSF, GRAY_MATTER, WHITE_MATTER, LESION = 0, 1, 2, 3, 4

TEMPLATE_MARGIN_VOX = 6  # 1 mm voxels kept around the template brain so warps never read past it
GRID_MARGIN_MM = 6.0  # air kept around the subject's brain in the output field of view
VENTRICLE_CENTER_MNI = np.array([0.0, -12.0, 14.0])  # between the lateral ventricles, MNI mm
VENTRICLE_SIGMA_MM = 22.0


@dataclass(frozen=True)
class Template:
    """MNI152 2009 tissue maps cropped to the brain, pre-blurred for one output spacing."""

    gm: np.ndarray  # float32 probability, 1 mm
    wm: np.ndarray
    brain: np.ndarray  # float32 brain-mask fraction after the anti-alias blur
    world_to_index: np.ndarray  # 4x4, MNI mm -> voxel index of the cropped arrays
    surface: np.ndarray  # (P, 3) MNI mm points on the brain boundary, for the subject's crop
    lo: np.ndarray  # (3,) MNI mm bounding box of the brain
    hi: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return (self.lo + self.hi) / 2

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """(P, 3) MNI mm -> (P, 3) voxel indices of the cropped arrays."""
        return points @ self.world_to_index[:3, :3].T + self.world_to_index[:3, 3]

    def probability_at(self, points: np.ndarray, tissue: str) -> np.ndarray:
        """Nearest-voxel tissue probability ('gm', 'wm' or 'parenchyma') at (P, 3) MNI mm points."""
        idx = np.rint(self.to_index(points)).astype(int)
        inside = np.all((idx >= 0) & (idx < np.array(self.gm.shape)), axis=1)
        idx = np.clip(idx, 0, np.array(self.gm.shape) - 1)
        ii = tuple(idx.T)
        values = {"gm": self.gm[ii], "wm": self.wm[ii]}
        values["parenchyma"] = values["gm"] + values["wm"]
        return np.where(inside, values[tissue], 0.0)


@lru_cache(maxsize=1)
def _nilearn_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM, brain mask (1 mm, float32) and their affine, from the files inside nilearn's wheel."""
    try:
        from nilearn import datasets
        gm_img = datasets.load_mni152_gm_template(resolution=1)
        wm_img = datasets.load_mni152_wm_template(resolution=1)
        brain_img = datasets.load_mni152_brain_mask(resolution=1)
    except Exception as exc:  # nilearn missing or its packaged files unreadable
        raise NNSynthError(f"cannot load the MNI152 template shipped with nilearn ({exc}); "
                           "install nilearn>=0.10") from exc
    gm = np.asarray(gm_img.get_fdata(dtype=np.float32))
    wm = np.asarray(wm_img.get_fdata(dtype=np.float32))
    brain = (np.asarray(brain_img.get_fdata(dtype=np.float32)) > 0).astype(np.float32)
    return gm, wm, brain, np.asarray(gm_img.affine, dtype=float)


def anti_alias_sigma(spacing: Spacing) -> np.ndarray:
    """Gaussian sigma (1 mm voxels) that turns 1 mm maps into the partial volumes of `spacing`."""
    s = np.asarray(spacing, dtype=float)
    return 0.42 * np.sqrt(np.maximum(s ** 2 - 1.0, 0.0))


@lru_cache(maxsize=2)
def load_template(spacing: Spacing) -> Template:
    """The template prepared for one output spacing; cached per process (workers inherit it)."""
    gm, wm, brain, affine = _nilearn_maps()
    inside = np.argwhere(brain > 0)
    start = np.maximum(inside.min(0) - TEMPLATE_MARGIN_VOX, 0)
    stop = np.minimum(inside.max(0) + TEMPLATE_MARGIN_VOX + 1, brain.shape)
    crop = tuple(slice(a, b) for a, b in zip(start, stop))
    sigma = anti_alias_sigma(spacing)
    blur = (lambda a: ndimage.gaussian_filter(a, sigma, mode="constant")) if sigma.any() else np.copy
    gm_c, wm_c, brain_c = (blur(np.ascontiguousarray(a[crop])) for a in (gm, wm, brain))
    crop_affine = affine.copy()
    crop_affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    mask = brain[crop] > 0
    boundary = mask & ~ndimage.binary_erosion(mask, border_value=0)
    points_idx = np.argwhere(boundary)[::5].astype(float)
    surface = points_idx @ crop_affine[:3, :3].T + crop_affine[:3, 3]
    return Template(gm=gm_c.astype(np.float32), wm=wm_c.astype(np.float32),
                    brain=brain_c.astype(np.float32), world_to_index=np.linalg.inv(crop_affine),
                    surface=surface, lo=surface.min(0), hi=surface.max(0))


@dataclass(frozen=True)
class SmoothField:
    """Random smooth field: Gaussian bumps on a regular lattice, evaluable on grids or at points."""

    lo: np.ndarray  # (3,) mm, first lattice node
    step: float  # mm between lattice nodes
    sigma: float  # mm, width of each bump
    coef: np.ndarray  # (C, nx, ny, nz) bump heights, one lattice per field component

    @classmethod
    def random(cls, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, step: float,
               sigma: float, amplitude: float, components: int = 1) -> SmoothField:
        """A field whose components have roughly `amplitude` standard deviation everywhere."""
        pad = 3 * sigma
        lo = np.asarray(lo, dtype=float) - pad
        n = np.ceil((np.asarray(hi, dtype=float) + pad - lo) / step).astype(int) + 1
        # sum over nodes of exp(-d^2/sigma^2) ~ sigma*sqrt(pi)/step per axis -> variance per node
        per_axis = sigma * np.sqrt(np.pi) / step
        coef = rng.standard_normal((components, *n)) * (amplitude / per_axis ** 1.5)
        return cls(lo=lo, step=float(step), sigma=float(sigma), coef=coef)

    def _weights(self, axis: int, coords: np.ndarray) -> np.ndarray:
        nodes = self.lo[axis] + self.step * np.arange(self.coef.shape[axis + 1])
        return np.exp(-((np.asarray(coords)[:, None] - nodes[None, :]) ** 2) / (2 * self.sigma ** 2))

    def on_grid(self, axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """(C, nx, ny, nz) values on the grid spanned by three 1-D mm coordinate vectors.

        Separable contraction (plain einsum, no BLAS) keeps it cheap and bit-identical across
        processes, which the -np determinism relies on.
        """
        wx, wy, wz = (self._weights(a, axes[a]) for a in range(3))
        t = np.einsum("zc,kabc->kabz", wz, self.coef)
        t = np.einsum("yb,kabz->kayz", wy, t)
        return np.einsum("xa,kayz->kxyz", wx, t).astype(np.float32)

    @cached_property
    def _lookup(self) -> tuple[np.ndarray, float, np.ndarray]:
        """The field tabulated every step/5 mm: point queries become a cheap linear lookup."""
        fine = self.step / 5.0
        n = (np.array(self.coef.shape[1:]) - 1) * 5 + 1
        axes = tuple(self.lo[a] + fine * np.arange(n[a]) for a in range(3))
        return self.lo, fine, self.on_grid(axes)

    def at_points(self, points: np.ndarray) -> np.ndarray:
        """(P, C) values at (P, 3) mm points (linear interpolation of the tabulated field)."""
        lo, fine, table = self._lookup
        index = ((points - lo) / fine).T
        return np.stack([ndimage.map_coordinates(c, index, order=1, mode="nearest", prefilter=False)
                         for c in table], axis=1)


@dataclass(frozen=True)
class Geometry:
    """One subject's head: maps world (scanner) mm to template (MNI) mm."""

    matrix: np.ndarray  # 3x3 rotation x scale of the head, template -> world
    translation: np.ndarray  # (3,) mm
    center: np.ndarray  # (3,) MNI mm the pose is applied about
    displacement: SmoothField  # 3 components, mm, a function of world position
    ventricle_strength: float  # 0 = template ventricles, up to ~0.3 = enlarged (atrophy)

    def _to_template(self, world: list[np.ndarray], disp: np.ndarray | list[np.ndarray]) -> list:
        inv = np.linalg.inv(self.matrix)
        q = [world[b] - self.center[b] - self.translation[b] for b in range(3)]
        out = [self.center[a] + inv[a, 0] * q[0] + inv[a, 1] * q[1] + inv[a, 2] * q[2] + disp[a]
               for a in range(3)]
        v = [out[a] - VENTRICLE_CENTER_MNI[a] for a in range(3)]
        pull = self.ventricle_strength * np.exp(-(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
                                                / (2 * VENTRICLE_SIGMA_MM ** 2))
        return [out[a] - pull * v[a] for a in range(3)]

    def grid_to_template(self, axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """(3, nx, ny, nz) float32 MNI mm of every voxel centre of a grid (1-D world mm axes)."""
        world = [axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]]
        disp = self.displacement.on_grid(axes)
        return np.stack([a.astype(np.float32) for a in self._to_template(world, disp)])

    def points_to_template(self, points: np.ndarray) -> np.ndarray:
        disp = self.displacement.at_points(points)
        return np.stack(self._to_template(list(points.T), list(disp.T)), axis=1)

    def points_to_world(self, template_points: np.ndarray, iterations: int = 8) -> np.ndarray:
        """Invert the mapping for a point cloud by fixed-point iteration (the warp is mild)."""
        world = self.center + self.translation + (template_points - self.center) @ self.matrix.T
        for _ in range(iterations):
            world = world + (template_points - self.points_to_template(world)) @ self.matrix.T
        return world


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_geometry(rng: np.random.Generator, template: Template) -> tuple[Geometry, dict]:
    """Head pose (a few degrees), size (+-7%), position and a smooth warp of a few mm."""
    angles = np.clip(rng.normal(0.0, [5.0, 3.0, 3.0]), -10.0, 10.0)  # pitch varies most
    head_size = rng.uniform(0.93, 1.07)
    scale = head_size * rng.uniform(0.97, 1.03, size=3)
    translation = np.clip(rng.normal(0.0, 3.0, size=3), -8.0, 8.0)
    warp_mm = rng.uniform(1.0, 2.5)
    displacement = SmoothField.random(rng, template.lo, template.hi, step=20.0, sigma=14.0,
                                      amplitude=warp_mm, components=3)
    ventricles = rng.uniform(0.0, 0.3)
    geometry = Geometry(matrix=_rotation(angles) @ np.diag(scale), translation=translation,
                        center=template.center, displacement=displacement,
                        ventricle_strength=ventricles)
    facts = {"rotation_deg": np.round(angles, 2).tolist(), "scale": np.round(scale, 4).tolist(),
             "translation_mm": np.round(translation, 2).tolist(), "warp_rms_mm": round(warp_mm, 2),
             "ventricle_enlargement": round(ventricles, 3)}
    return geometry, facts


@dataclass(frozen=True)
class Grid:
    """Axis-aligned output grid of one subject (RAS world mm, like the MNI template)."""

    shape: tuple[int, int, int]
    spacing: Spacing
    origin: np.ndarray  # world mm of voxel (0, 0, 0)

    @property
    def affine(self) -> np.ndarray:
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = self.origin
        return affine

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(self.origin[a] + self.spacing[a] * np.arange(self.shape[a]) for a in range(3))


def subject_grid(geometry: Geometry, template: Template, spacing: Spacing) -> Grid:
    """Field of view cropped to the subject's brain plus a small margin."""
    world = geometry.points_to_world(template.surface)
    lo = world.min(0) - GRID_MARGIN_MM
    hi = world.max(0) + GRID_MARGIN_MM
    shape = tuple(int(n) for n in np.ceil((hi - lo) / np.asarray(spacing)).astype(int) + 1)
    return Grid(shape=shape, spacing=tuple(float(s) for s in spacing), origin=np.round(lo, 3))


@dataclass(frozen=True)
class Anatomy:
    """A subject's healthy anatomy on its output grid."""

    grid: Grid
    template_coords: np.ndarray  # (3, nx, ny, nz) float32 MNI mm of each voxel centre
    fractions: np.ndarray  # (3, nx, ny, nz) float32 CSF, GM, WM volume fractions (rest = air)
    labels: np.ndarray  # uint8 healthy label map: 0 background, 1 CSF, 2 GM, 3 WM

    @property
    def parenchyma(self) -> np.ndarray:
        return (self.labels == GRAY_MATTER) | (self.labels == WHITE_MATTER)


def sample_anatomy(template: Template, geometry: Geometry, grid: Grid) -> Anatomy:
    """Tissue fractions and the argmax label map of the warped template on the subject grid."""
    coords = geometry.grid_to_template(grid.axes())
    m = template.world_to_index
    index = np.stack([m[a, 0] * coords[0] + m[a, 1] * coords[1] + m[a, 2] * coords[2] + m[a, 3]
                      for a in range(3)])

    def sample(volume: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(volume, index, order=1, mode="constant", cval=0.0,
                                       prefilter=False)

    gm, wm, brain = sample(template.gm), sample(template.wm), sample(template.brain)
    tissue = np.clip(gm + wm, 0.0, 1.0)
    scale = np.where(gm + wm > 1.0, tissue / np.maximum(gm + wm, 1e-6), 1.0)
    gm, wm = gm * scale, wm * scale
    inside = np.clip(np.maximum(brain, tissue), 0.0, 1.0)
    csf = np.clip(inside - gm - wm, 0.0, 1.0)
    fractions = np.stack([csf, gm, wm]).astype(np.float32)
    labels = (np.argmax(fractions, axis=0) + CSF).astype(np.uint8)
    labels[inside < 0.5] = BACKGROUND
    return Anatomy(grid=grid, template_coords=coords, fractions=fractions, labels=labels)
