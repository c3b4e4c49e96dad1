"""Infarcts and look-alikes for the demo cohort, placed in the subject's warped anatomy.

Shapes are defined in template (MNI) coordinates, so a territory means the same brain region in
every subject whatever its pose and warp. A lesion is the connected region of about N parenchyma
voxels with the highest value of a noisy ellipsoidal score inside its arterial territory: N fixes
the volume, the noise makes the outline irregular, and the score margin gives a soft
partial-volume edge for the image renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy import ndimage

from nnsynth_datasets.demo_cohort.anatomy import Anatomy, Template

K = TypeVar("K")

# ISLES 2022: median lesion volume about 6 ml, spread over three orders of magnitude. The planned
# median is a little higher because lacunes are capped and parenchyma limits some lesions.
TOTAL_VOLUME_MEDIAN_ML = 8.5
TOTAL_VOLUME_LOG_SD = 1.35
TOTAL_VOLUME_RANGE_ML = (0.1, 150.0)
LESION_COUNT_P = {1: 0.55, 2: 0.28, 3: 0.17}  # for subjects that have lesions
LESION_FREE_SHARE = 0.2


@dataclass(frozen=True)
class Territory:
    """An ellipsoid in MNI mm (right hemisphere; mirrored in x for the left one)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    weight: float  # how often infarcts fall here
    tissue: str  # where a lesion may be centred: 'parenchyma' or 'wm'


TERRITORIES: dict[str, Territory] = {
    "MCA": Territory((42.0, -12.0, 12.0), (26.0, 46.0, 34.0), 0.48, "parenchyma"),
    "ACA": Territory((9.0, 16.0, 42.0), (11.0, 42.0, 28.0), 0.10, "parenchyma"),
    "PCA": Territory((20.0, -74.0, 4.0), (20.0, 26.0, 20.0), 0.16, "parenchyma"),
    "cerebellar": Territory((24.0, -62.0, -34.0), (20.0, 20.0, 15.0), 0.08, "parenchyma"),
    "lacunar": Territory((20.0, -6.0, 12.0), (9.0, 20.0, 14.0), 0.18, "wm"),
}
LACUNE_MEDIAN_ML, LACUNE_RANGE_ML = 0.5, (0.1, 1.5)


@dataclass(frozen=True)
class Placement:
    """Where one region goes and what it looks like (contrast factors act on GM/WM only)."""

    kind: str  # 'infarct', 't2_shine_through', 'chronic_infarct' or 'susceptibility_artifact'
    territory: str
    hemisphere: str
    center: np.ndarray  # MNI mm
    volume_ml: float  # target
    adc_factor: float
    s0_factor: float
    irregularity: float  # amplitude of the shape noise relative to the ellipsoid radius


@dataclass
class Region:
    """A rasterised region on a crop of the subject grid."""

    crop: tuple[slice, slice, slice]
    selected: np.ndarray  # bool, voxels that carry the label
    weight: np.ndarray  # float32 in [0, 1], soft (partial-volume) membership
    heterogeneity: np.ndarray  # float32 around 1, spatially varying contrast strength

    @property
    def voxels(self) -> int:
        return int(self.selected.sum())


def _pick(rng: np.random.Generator, table: Mapping[K, object]) -> K:
    """A key drawn with the table's weights (a number, or a Territory's weight)."""
    keys = list(table)
    weights = np.array([getattr(v, "weight", v) for v in table.values()], dtype=float)
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]


def sample_center(rng: np.random.Generator, template: Template, territory: Territory,
                  hemisphere: str, min_probability: float = 0.6, tries: int = 400) -> np.ndarray:
    """A random point of the territory (MNI mm) that lies in the requested tissue of the template."""
    sign = 1.0 if hemisphere == "right" else -1.0
    center = np.array(territory.center) * np.array([sign, 1.0, 1.0])
    direction = rng.standard_normal((tries, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = rng.uniform(0.0, 1.0, size=(tries, 1)) ** (1 / 3)
    points = center + direction * radius * np.array(territory.radii) * 0.8
    probability = template.probability_at(points, territory.tissue)
    good = np.flatnonzero(probability >= min_probability)
    return points[good[0]] if good.size else points[int(np.argmax(probability))]


def _split_volume(rng: np.random.Generator, total: float, count: int) -> list[float]:
    """Largest lesion first; the others are satellites of varying size."""
    shares = np.sort(rng.dirichlet(np.full(count, 1.2)))[::-1]
    return [float(total * s) for s in shares]


def _infarct_contrast(rng: np.random.Generator) -> tuple[float, float]:
    """(ADC factor, S0 factor): a fifth of infarcts are subtle (DWI only about +15-30%)."""
    if rng.random() < 0.2:
        return rng.uniform(0.75, 0.85), rng.uniform(1.05, 1.12)
    return rng.uniform(0.45, 0.78), rng.uniform(1.05, 1.5)


def plan_infarcts(rng: np.random.Generator, template: Template, lesion_free: bool) -> list[Placement]:
    """1 to 3 acute infarcts (none for a lesion-free subject), log-normal total volume like ISLES 2022."""
    if lesion_free:
        return []
    count = _pick(rng, LESION_COUNT_P)
    total = float(np.clip(rng.lognormal(np.log(TOTAL_VOLUME_MEDIAN_ML), TOTAL_VOLUME_LOG_SD),
                          *TOTAL_VOLUME_RANGE_ML))
    hemisphere = "right" if rng.random() < 0.5 else "left"
    territory = _pick(rng, TERRITORIES)
    plans = []
    for volume in _split_volume(rng, total, count):
        if territory == "lacunar":
            volume = float(np.clip(min(volume, rng.lognormal(np.log(LACUNE_MEDIAN_ML), 0.7)),
                                   *LACUNE_RANGE_ML))
        adc, s0 = _infarct_contrast(rng)
        center = sample_center(rng, template, TERRITORIES[territory], hemisphere)
        plans.append(Placement("infarct", territory, hemisphere, center, volume, adc, s0,
                               irregularity=rng.uniform(0.35, 0.9)))
        # satellites: usually the same embolic territory, sometimes elsewhere
        if rng.random() < 0.4:
            territory = _pick(rng, TERRITORIES)
            hemisphere = hemisphere if rng.random() < 0.7 else ("left" if hemisphere == "right" else "right")
    return plans


def plan_confounders(rng: np.random.Generator, template: Template) -> list[Placement]:
    """Unlabelled look-alikes the segmentation must ignore: T2 shine-through, chronic infarcts,
    susceptibility pile-up at the skull base."""
    count = int(rng.choice(4, p=[0.35, 0.35, 0.2, 0.1]))
    kinds = {"t2_shine_through": 0.45, "chronic_infarct": 0.30, "susceptibility_artifact": 0.25}
    plans = []
    for _ in range(count):
        kind = _pick(rng, kinds)
        hemisphere = "right" if rng.random() < 0.5 else "left"
        plans.append(_confounder(rng, template, kind, hemisphere))
    return plans


def _confounder(rng: np.random.Generator, template: Template, kind: str, hemisphere: str) -> Placement:
    if kind == "t2_shine_through":  # old gliosis / WM hyperintensity: bright DWI, normal-high ADC
        territory = Territory((24.0, -10.0, 22.0), (14.0, 40.0, 16.0), 1.0, "wm")
        center = sample_center(rng, template, territory, hemisphere, min_probability=0.7)
        volume = float(np.clip(rng.lognormal(np.log(1.0), 0.8), 0.1, 10.0))
        return Placement(kind, "periventricular", hemisphere, center, volume,
                         adc_factor=rng.uniform(1.0, 1.35), s0_factor=rng.uniform(1.6, 2.4),
                         irregularity=rng.uniform(0.3, 0.6))
    if kind == "chronic_infarct":  # encephalomalacia: CSF-like, dark DWI, bright ADC
        name = str(rng.choice(["MCA", "ACA", "PCA"], p=[0.6, 0.15, 0.25]))
        center = sample_center(rng, template, TERRITORIES[name], hemisphere)
        volume = float(np.clip(rng.lognormal(np.log(3.0), 1.0), 0.3, 40.0))
        return Placement(kind, name, hemisphere, center, volume,
                         adc_factor=rng.uniform(2.3, 3.3), s0_factor=rng.uniform(1.3, 1.8),
                         irregularity=rng.uniform(0.3, 0.6))
    sites = {"temporal_pole": (36.0, 10.0, -34.0), "orbitofrontal": (8.0, 40.0, -24.0)}
    site = str(rng.choice(list(sites)))
    center = np.array(sites[site]) * np.array([1.0 if hemisphere == "right" else -1.0, 1.0, 1.0])
    volume = float(rng.uniform(2.0, 12.0))
    return Placement(kind, site, hemisphere, center + rng.normal(0, 3.0, 3), volume,
                     adc_factor=1.0, s0_factor=rng.uniform(1.6, 2.8), irregularity=0.5)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _ellipsoid_distance(coords: np.ndarray, center: np.ndarray, radii: np.ndarray,
                        rotation: np.ndarray | None = None) -> np.ndarray:
    """Normalised ellipsoid 'radius' (1 on the surface) of MNI-mm voxel coordinates (3, ...)."""
    rel = [coords[a] - np.float32(center[a]) for a in range(3)]
    if rotation is not None:
        rel = [rotation[0, a] * rel[0] + rotation[1, a] * rel[1] + rotation[2, a] * rel[2]
               for a in range(3)]
    return np.sqrt(sum((rel[a] / np.float32(radii[a])) ** 2 for a in range(3)))


def _bounding_crop(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    if not mask.any():
        return None
    idx = [np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    return tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: np.ndarray) -> np.ndarray:
    """Unit-variance Gaussian random field with the given correlation width (voxels)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox,
                                    mode="wrap")
    return field / max(float(field.std()), 1e-6)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 + 0.5 * np.tanh(0.5 * x)).astype(np.float32)


def _connected_top(score: np.ndarray, allowed: np.ndarray, n: int) -> tuple[float, np.ndarray]:
    """Threshold whose connected region around the best voxel has about n voxels, and that region.

    A plain top-n selection of a noisy score scatters specks around the lesion; growing one
    26-connected region keeps an infarct in one piece (satellites are separate infarcts).
    """
    values = np.sort(score[allowed])[::-1]
    seed = np.unravel_index(np.argmax(np.where(allowed, score, -np.inf)), score.shape)
    structure = np.ones((3, 3, 3), dtype=bool)

    def region(k: int) -> np.ndarray:
        labels, _ = ndimage.label(allowed & (score >= values[k - 1]), structure=structure)
        return labels == labels[seed]

    lo, hi = n, values.size  # region(k) grows with k; find the smallest k with >= n voxels
    if region(lo).sum() >= n:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if region(mid).sum() >= n:
            hi = mid
        else:
            lo = mid
    best = region(hi)
    below = region(max(hi - 1, 1))
    if abs(int(below.sum()) - n) < abs(int(best.sum()) - n):
        return float(values[max(hi - 1, 1) - 1]), below
    return float(values[hi - 1]), best


def rasterise(rng: np.random.Generator, anatomy: Anatomy, plan: Placement, occupied: np.ndarray | None,
              territory: Territory | None) -> Region | None:
    """Turn a placement into voxels. With `occupied` (voxels taken by earlier regions) the region
    is a connected set of about N free parenchyma voxels of highest score (N from the volume) and
    leaves the occupied voxels untouched; without, it is the soft blob itself (artefacts ignore
    tissue)."""
    spacing = np.array(anatomy.grid.spacing)
    aspect = np.sort(rng.uniform([1.0, 0.55, 0.4], [1.0, 1.0, 0.9]))[::-1]
    fill = 0.75 if occupied is not None else 1.0  # part of the ellipsoid that is allowed tissue
    r0 = (3 * plan.volume_ml * 1000 / (4 * np.pi * fill * aspect.prod())) ** (1 / 3)
    radii = r0 * aspect
    distance = _ellipsoid_distance(anatomy.template_coords, plan.center, radii, _random_rotation(rng))
    reach = 1.0 + 3.0 * plan.irregularity + 0.6
    crop = _bounding_crop(distance <= reach)
    if crop is None:
        return None
    distance = distance[crop]
    coarse = np.maximum(rng.uniform(0.3, 0.5) * r0 / spacing, 0.7)
    fine = np.maximum(0.12 * r0 / spacing, 0.6)
    noise = 0.8 * smooth_noise(rng, distance.shape, coarse) + 0.6 * smooth_noise(rng, distance.shape, fine)
    score = -distance + plan.irregularity * noise
    if plan.kind == "infarct" and plan.territory != "lacunar":  # cortical ribbon involvement
        gm = anatomy.fractions[1][crop]
        score = score + rng.uniform(0.0, 0.5) * gm
    heterogeneity = np.clip(1.0 + 0.25 * smooth_noise(rng, distance.shape, fine), 0.5, 1.3)
    inside = np.ones(distance.shape, dtype=np.float32)
    if territory is not None:
        sign = 1.0 if plan.hemisphere == "right" else -1.0
        t_center = np.array(territory.center) * np.array([sign, 1.0, 1.0])
        coords = anatomy.template_coords[(slice(None), *crop)]
        inside = _sigmoid((1.25 - _ellipsoid_distance(coords, t_center, territory.radii)) / 0.05)
    edge = 0.3 * float(spacing.mean()) / r0  # about one voxel of soft edge, in score units
    if occupied is None:
        weight = _sigmoid((score + 1.0) / edge) * inside
        return Region(crop, weight >= 0.5, weight, heterogeneity.astype(np.float32))
    free = ~occupied[crop]
    inside = inside * free
    allowed = anatomy.parenchyma[crop] & free & (inside > 0.5)
    n_target = max(1, int(round(plan.volume_ml / anatomy.grid.voxel_ml)))
    allowed_scores = score[allowed]
    if allowed_scores.size == 0:
        return None
    threshold, selected = _connected_top(score, allowed, min(n_target, allowed_scores.size))
    # the soft edge may spill one voxel into CSF (partial volume), never into other blobs
    near = ndimage.binary_dilation(selected, structure=np.ones((3, 3, 3), dtype=bool))
    weight = np.maximum(_sigmoid((score - threshold) / edge) * inside * near, 0.5 * selected)
    return Region(crop, selected, weight.astype(np.float32), heterogeneity.astype(np.float32))
