"""Sampling lesion masks from a trained mask GAN and placing them in a brain.

Design: the GAN generates **lesion-centred boxes** at the dataset's target spacing, and a **location
prior** puts them into a brain. Why not whole-volume masks as in the seed paper:

* the synthesis engine writes lesions into many different healthy anatomies in nnU-Net's preprocessed
  space; a whole-volume mask lives in one canonical frame and would need a registration to each host,
  while a box can be dropped into any host's parenchyma;
* the volumes nnU-Net preprocesses differ in shape (cropped to the nonzero region); a box at target
  spacing keeps millimetres honest, so the requested volume in ml is a real volume;
* shape is (nearly) translation-invariant, so every training lesion teaches the GAN shape without
  spending capacity and data on location (stroke cohorts have tens to hundreds of cases);
* it is far cheaper: a 32^3 box is 1/16 of 128x128x32 voxels, which matters on the CPU path.

The unit is a lesion *cluster*: a training case's lesion components closer than ~1 cm form one
sample (an infarct with its satellites), separate infarcts in other territories are separate samples.
A synthetic case draws its number of lesions from the training cases' counts.

Location is kept realistic by the prior: the centres of the training lesions, expressed in the
normalized bounding box of each case's brain ([0, 1]^3), sampled jointly with that lesion's volume,
jittered, mapped into the host's brain box and restricted to parenchyma (grey or white matter when a
label map is given, otherwise the brain/nonzero mask). Voxels that fall outside the brain are cut.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import load_checkpoint
from nnunet_synth.lesions.geometry import from_normalized, place_box
from nnunet_synth.models.maskgan import MaskGANConfig, MaskGenerator
from nnunet_synth.nnunet_io.fingerprint import DatasetFingerprint

SeedLike = int | np.random.Generator | None


def as_rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


@dataclass
class LocationPrior:
    """Training lesion centres in normalized brain-box coordinates; draws jittered copies."""

    centres: np.ndarray  # (N, 3) in [0, 1]
    jitter: float = 0.03

    def sample_index(self, rng: np.random.Generator) -> int:
        return int(rng.integers(len(self.centres)))

    def draw(self, rng: np.random.Generator, index: int | None = None) -> np.ndarray:
        i = self.sample_index(rng) if index is None else index
        return np.clip(self.centres[i] + rng.normal(0, self.jitter, 3), 0.0, 1.0)


def choose_centre(brain: np.ndarray, parenchyma: np.ndarray, prior: LocationPrior, rng: np.random.Generator,
                  index: int | None = None, tries: int = 100) -> np.ndarray:
    """Voxel for the lesion centre: prior draws until one hits parenchyma, else the nearest parenchyma voxel."""
    if not parenchyma.any():
        raise NNSynthError("the host has no parenchyma voxels to place a lesion in")
    point = None
    for _ in range(tries):
        point = np.rint(from_normalized(prior.draw(rng, index), brain)).astype(int)
        point = np.clip(point, 0, np.array(brain.shape) - 1)
        if parenchyma[tuple(point)]:
            return point
    candidates = np.argwhere(parenchyma)
    return candidates[np.argmin(((candidates - point) ** 2).sum(1))]


@dataclass
class Placement:
    mask: np.ndarray  # placed lesion, cut to the brain
    centre: np.ndarray
    inside_brain: float  # share of the generated voxels that fell inside the brain before the cut


def place_lesion(box: np.ndarray, brain: np.ndarray, prior: LocationPrior, rng: SeedLike = None,
                 parenchyma: np.ndarray | None = None, prior_index: int | None = None) -> Placement:
    """Put a lesion box into a host: centre from the prior within parenchyma, voxels outside the brain cut."""
    rng = as_rng(rng)
    parenchyma = brain if parenchyma is None else parenchyma & brain
    centre = choose_centre(brain, parenchyma, prior, rng, prior_index)
    placed = place_box(box, brain.shape, centre)
    n = int(box.sum())
    inside = float((placed & brain).sum() / n) if n else 1.0
    return Placement(placed & brain, centre, inside)


@dataclass
class CaseSample:
    mask: np.ndarray  # union of the placed lesions, cut to the brain
    boxes: list[np.ndarray]  # the generated lesion boxes
    requested_ml: np.ndarray
    placements: list[Placement]

    @property
    def inside_brain(self) -> float:
        """Share of generated voxels that fell inside the brain before the cut."""
        total = sum(int(b.sum()) for b in self.boxes)
        inside = sum(p.inside_brain * int(b.sum()) for p, b in zip(self.placements, self.boxes))
        return inside / total if total else 1.0


MATCH_RANGE = (-0.9, 0.9)  # thresholds a volume-matched mask may use (the GAN's own shape, not its noise)


def volume_matched_mask(raw: np.ndarray, voxels: float, limits: tuple[float, float] = MATCH_RANGE) -> np.ndarray:
    """The generator output thresholded so that it holds ``voxels`` voxels (as near as the output allows).

    The GAN's volume conditioning alone missed the requested volume by a median 61%: the condition steers
    the shape's size only loosely. The shape is the GAN's; its size is set here by moving the threshold
    from 0 within ``limits`` to where the mask has the requested number of voxels (the k largest outputs).
    When the threshold falls below 0, only the parts connected to the shape at 0 grow: pieces that appear
    only at the lower threshold are dropped (they fragmented the lesions), so the volume can stay a little short.
    """
    import cc3d

    flat = np.sort(raw.ravel())[::-1]
    k = int(np.clip(round(voxels), 1, flat.size))
    threshold = float(np.clip(flat[k - 1], *limits))
    mask = raw >= threshold
    core = raw > 0
    if threshold >= 0 or not core.any():
        return mask
    labels = cc3d.connected_components(mask.astype(np.uint8), connectivity=26)
    keep = np.unique(labels[core & mask])
    return np.isin(labels, keep[keep > 0])


class MaskSampler:
    """Draws lesion-mask boxes (bool arrays at target spacing) from a mask-GAN checkpoint."""

    def __init__(self, generator: MaskGenerator, prior: LocationPrior, train_log_volumes: np.ndarray,
                 fingerprint: DatasetFingerprint | None = None, device: str | torch.device = "cpu",
                 lesions_per_case: Sequence[int] = (1,)) -> None:
        self.generator = generator.to(device).eval()
        self.config: MaskGANConfig = generator.config
        self.prior = prior
        self.train_log_volumes = np.asarray(train_log_volumes, float)
        if len(self.train_log_volumes) != len(prior.centres):
            raise NNSynthError("location prior and training volumes must describe the same lesions")
        self.lesions_per_case = np.asarray(lesions_per_case, int)
        self.fingerprint = fingerprint
        self.device = torch.device(device)
        self.match_volume = True  # threshold each output so it holds the requested volume (False: at 0)

    @classmethod
    def from_checkpoint(cls, path: str | Path, fingerprint: DatasetFingerprint | None = None,
                        device: str | torch.device = "cpu") -> MaskSampler:
        """Load a ``maskgan`` checkpoint; with ``fingerprint``, refuse one trained for another dataset."""
        ckpt = load_checkpoint(path, kind="maskgan", fingerprint=fingerprint)
        config = ckpt.build_config(MaskGANConfig)
        gen = MaskGenerator(config)
        gen.load_state_dict(ckpt.state_dicts["generator"])
        extra = ckpt.extra
        prior = LocationPrior(np.asarray(extra["location_prior"], float))
        return cls(gen, prior, np.asarray(extra["train_log_volumes"], float), ckpt.dataset_fingerprint(), device,
                   extra.get("lesions_per_case", [1]))

    @property
    def box_shape(self) -> tuple[int, int, int]:
        return self.config.box_shape

    def sample_volumes(self, n: int, rng: SeedLike = None) -> tuple[np.ndarray, np.ndarray]:
        """Volumes (ml) from the training distribution (smoothed bootstrap) and the training index used."""
        rng = as_rng(rng)
        logv = self.train_log_volumes
        idx = rng.integers(len(logv), size=n)
        bandwidth = 1.06 * max(float(logv.std()), 1e-3) * len(logv) ** -0.2  # Silverman's rule
        return np.exp(logv[idx] + rng.normal(0, bandwidth, n)), idx

    def check_volumes(self, volumes: np.ndarray) -> None:
        cap = 0.5 * self.config.box_ml
        if np.any(volumes <= 0) or np.any(volumes > cap):
            raise NNSynthError(f"requested lesion volume must be in (0, {cap:.3g}] ml for this generator "
                               f"(box {self.box_shape} at {self.config.spacing} mm)")
        lo, hi = np.exp(self.train_log_volumes.min()) / 2, np.exp(self.train_log_volumes.max()) * 2
        if np.any(volumes < lo) or np.any(volumes > hi):
            warnings.warn(f"requested volumes outside {lo:.3g}..{hi:.3g} ml extrapolate beyond the training "
                          "lesions; expect larger volume errors", stacklevel=3)

    @torch.no_grad()
    def generate(self, volumes_ml: np.ndarray, seed: SeedLike = None, batch_size: int = 16) -> np.ndarray:
        """Raw generator output in [-1, 1], shape (n, *box_shape), for the given volumes."""
        rng = as_rng(seed)
        torch_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        out = []
        vols = torch.as_tensor(np.asarray(volumes_ml, float), dtype=torch.float32)
        for start in range(0, len(vols), batch_size):
            v = vols[start:start + batch_size]
            z = self.generator.sample_latent(len(v), torch_gen).to(self.device)
            cond = self.config.condition(v).to(self.device)
            out.append(self.generator(z, cond)[:, 0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, *self.box_shape), np.float32)

    def sample_with_volumes(self, n: int, volume_ml: float | Sequence[float] | None = None,
                            seed: SeedLike = None, batch_size: int = 16
                            ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
        """(masks, requested volumes in ml, training index per mask or None when volumes were given)."""
        rng = as_rng(seed)
        index = None
        if volume_ml is None:
            volumes, index = self.sample_volumes(n, rng)
        else:
            volumes = np.broadcast_to(np.asarray(volume_ml, float), (n,)).copy()
            self.check_volumes(volumes)
        raw = self.generate(volumes, rng, batch_size)
        if not self.match_volume:
            return [m > 0 for m in raw], volumes, index
        return [volume_matched_mask(m, v / self.config.voxel_ml) for m, v in zip(raw, volumes)], volumes, index

    def sample(self, n: int, volume_ml: float | Sequence[float] | None = None, seed: SeedLike = None,
               batch_size: int = 16) -> list[np.ndarray]:
        """``n`` boolean lesion boxes; ``volume_ml`` asks for a lesion size, else sizes follow the training set."""
        return self.sample_with_volumes(n, volume_ml, seed, batch_size)[0]

    def sample_case(self, brain: np.ndarray, parenchyma: np.ndarray | None = None, seed: SeedLike = None,
                    n_lesions: int | None = None, volume_ml: float | None = None) -> CaseSample:
        """A whole synthetic lesion mask for a host brain: lesion count from the training cases, each
        lesion generated and placed; without ``volume_ml`` each lesion's size and location come from one
        training lesion (jointly), so big territorial infarcts keep their typical positions."""
        rng = as_rng(seed)
        k = int(rng.choice(self.lesions_per_case)) if n_lesions is None else int(n_lesions)
        boxes, volumes, index = self.sample_with_volumes(k, volume_ml, rng)
        mask = np.zeros(brain.shape, bool)
        placements = []
        for i, box in enumerate(boxes):
            prior_index = None if index is None else int(index[i])
            placed = place_lesion(box, brain, self.prior, rng, parenchyma, prior_index)
            mask |= placed.mask
            placements.append(placed)
        return CaseSample(mask, boxes, volumes, placements)

    def volume_ml(self, mask: np.ndarray) -> float:
        return float(mask.sum()) * self.config.voxel_ml


def relative_volume_error(masks: Sequence[np.ndarray], requested_ml: np.ndarray, voxel_ml: float) -> np.ndarray:
    """|V_generated - V_requested| / V_requested per mask."""
    got = np.array([m.sum() * voxel_ml for m in masks], float)
    return np.abs(got - requested_ml) / requested_ml


def log_volume_stats(volumes_ml: np.ndarray) -> tuple[float, float]:
    """Mean and std of log(ml), the condition normalization stored in the config."""
    logv = np.log(np.asarray(volumes_ml, float))
    if len(logv) == 0:
        return 0.0, 1.0
    return float(logv.mean()), float(max(logv.std(), 0.1))



@dataclass
class MaskGANLesionSource:
    """New lesion shapes from the mask GAN, placed by its location prior inside the allowed tissue."""

    sampler: MaskSampler

    @classmethod
    def from_checkpoint(cls, path: str | Path, fingerprint: DatasetFingerprint | None = None,
                        device: str | torch.device = "cpu") -> MaskGANLesionSource:
        return cls(MaskSampler.from_checkpoint(path, fingerprint=fingerprint, device=device))

    def draw(self, anatomy_id: str, brain: np.ndarray, allowed: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, str]:
        sample = self.sampler.sample_case(brain, parenchyma=allowed, seed=rng)
        return sample.mask & allowed, "maskgan"
