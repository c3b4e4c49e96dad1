"""Mixing synthetic cases into nnU-Net's training stream.

``SynthMixDataset`` looks like an nnU-Net dataset to nnU-Net's ``nnUNetDataLoader``: real
identifiers load real cases, identifiers starting with ``SYNTH_PREFIX`` are generated on the spot.
``draw_batch_keys`` replaces the loader's uniform key draw with one that puts an exact share of
synthetic keys into every batch (stochastic rounding when batch_size * fraction is fractional).
Synthetic cases then take nnU-Net's own cropping, foreground oversampling, augmentation and
deep-supervision path, exactly like real ones.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable

import numpy as np

from nnunet_synth.feeding.nnunet_format import NNUNetCase
from nnunet_synth.feeding.supply import SynthSupply

SYNTH_PREFIX = "nnsynth_"


def is_synthetic_key(key: str) -> bool:
    return str(key).startswith(SYNTH_PREFIX)


def synthetic_count(batch_size: int, fraction: float, rng: np.random.RandomState) -> int:
    """How many of batch_size slots are synthetic: floor(b*f) plus one with prob. of the remainder."""
    expected = batch_size * fraction
    base = int(np.floor(expected))
    return min(batch_size, base + int(rng.uniform() < expected - base))


class SynthMixDataset:
    """Wraps the real training dataset; synthetic keys are served by the supply (see module docstring)."""

    @classmethod
    def open(cls, real, make_case: Callable[[np.random.Generator], NNUNetCase], fraction: float, n_workers: int,
             pool_size: int, pool_uses: int, seed: int = 0, device: str = "cpu",
             log: Callable[[str], None] | None = None) -> SynthMixDataset:
        """The mixing dataset with its supply started (``SynthSupply.open``); call before nnU-Net forks."""
        if log is not None:
            log(f"nnsynth: synthetic fraction of each training batch: {fraction}")
        supply = SynthSupply.open(make_case, n_workers, pool_size, pool_uses, seed, device, log)
        return cls(real, supply, fraction)

    def __init__(self, real, supply: SynthSupply, fraction: float):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"synthetic fraction must be in [0, 1], got {fraction}")
        self.real = real
        self.identifiers = list(real.identifiers)
        self.source_folder = getattr(real, "source_folder", None)
        self.folder_with_segs_from_previous_stage = getattr(real, "folder_with_segs_from_previous_stage", None)
        # shared memory made before nnU-Net forks its workers: a schedule set in the main process reaches them
        self._fraction = multiprocessing.RawValue("d", fraction)
        self.supply = supply
        self._counter = 0
        self.synthetic_served = 0

    @property
    def fraction(self) -> float:
        return self._fraction.value

    @fraction.setter
    def fraction(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"synthetic fraction must be in [0, 1], got {value}")
        self._fraction.value = float(value)

    def __getitem__(self, identifier):
        return self.load_case(identifier)

    def load_case(self, identifier):
        if not is_synthetic_key(identifier):
            return self.real.load_case(identifier)
        case = self.supply.take()
        self.synthetic_served += 1
        return case.as_load_case()

    def draw_batch_keys(self, batch_size: int) -> list[str]:
        n_synth = synthetic_count(batch_size, self.fraction, np.random)
        real_keys = list(np.random.choice(self.identifiers, batch_size - n_synth, replace=True))
        synth_keys = []
        for _ in range(n_synth):
            self._counter += 1
            synth_keys.append(f"{SYNTH_PREFIX}{os.getpid()}_{self._counter:07d}")
        keys = real_keys + synth_keys
        order = np.random.permutation(len(keys))
        return [keys[i] for i in order]
