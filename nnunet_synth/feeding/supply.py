"""The supply: how synthetic cases reach nnU-Net's loader, in one of three modes.

- ``feed`` (``nnUNet_n_proc_DA > 0``): a producer thread in the main process generates on the training
  device (GPU when there is one) into a multiprocessing queue; each forked augmentation worker keeps a
  small pool filled from that queue, so no worker ever generates or touches CUDA.
- ``pool`` (single-threaded loading, the CPU default): a background thread keeps a pool of cases, each
  served a few times with its own nnU-Net crop and augmentation, so generation hides behind the step.
- ``request`` (pool size 0): every synthetic key is generated when nnU-Net asks for it; reproducible for
  a seed, slower.

Random numbers: the feed's producer is seeded from the fold; a pool draws from ``[seed, pid]`` (so forked
workers differ); on request, each case's generator is seeded from numpy's global state, which nnU-Net
seeds separately in each worker. The supply owns its threads and closes them (``close``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnunet_synth.feeding.feed import CaseFeed
from nnunet_synth.feeding.nnunet_format import NNUNetCase
from nnunet_synth.feeding.pool import CasePool

MODES = ("feed", "pool", "request")


class SynthSupply:
    def __init__(self, make_case: Callable[[np.random.Generator], NNUNetCase], mode: str, pool_size: int = 16,
                 pool_uses: int = 4, seed: int = 0, device: str = "cpu"):
        if mode not in MODES:
            raise ValueError(f"supply mode must be one of {MODES}, got {mode!r}")
        self.mode, self.device = mode, device
        self.feed: CaseFeed | None = None
        self.pool: CasePool | None = None
        self._make_case = make_case if mode == "request" else None
        if mode == "feed":
            self.feed = CaseFeed(make_case, capacity=max(pool_size, 2), seed=seed)
            self.pool = CasePool(self.feed.take, size=max(pool_size, 1), max_uses=pool_uses)
        elif mode == "pool":
            self.pool = CasePool(make_case, size=pool_size, max_uses=pool_uses)

    @classmethod
    def open(cls, make_case: Callable[[np.random.Generator], NNUNetCase], n_workers: int, pool_size: int,
             pool_uses: int, seed: int = 0, device: str = "cpu",
             log: Callable[[str], None] | None = None) -> SynthSupply:
        """Started in the mode that fits nnU-Net's loading: a feed for forked workers, else a pool, else on
        request. Call in the main process before nnU-Net forks its workers."""
        mode = "feed" if n_workers > 0 else "pool" if pool_size > 0 else "request"
        supply = cls(make_case, mode, pool_size, pool_uses, seed, device).start()
        if log is not None:
            log(f"nnsynth: synthetic cases {supply.describe()}")
        return supply

    def start(self) -> SynthSupply:
        """Call in the main process before nnU-Net forks its workers (starts the feed's producer)."""
        if self.feed is not None:
            self.feed.start()
        return self

    def take(self) -> NNUNetCase:
        """One synthetic case, in whichever process nnU-Net's loader runs."""
        if self.pool is not None:
            return self.pool.get()
        return self._make_case(np.random.default_rng(np.random.randint(0, 2**31 - 1, size=2)))

    def describe(self) -> str:
        if self.mode == "feed":
            return (f"generated in the main process on {self.device}, fed to the augmentation workers; each worker "
                    f"keeps {self.pool.size} cases, each used at most {self.pool.max_uses} times")
        if self.mode == "pool":
            return f"background pool of {self.pool.size} cases, each used at most {self.pool.max_uses} times"
        return "generated on request (no pool)"

    def report(self) -> str | None:
        """One line of statistics for the training log (None when there is nothing to say)."""
        if self.feed is not None:
            return f"nnsynth: main process generated {self.feed.produced} cases for the workers"
        if self.pool is not None:
            stats = self.pool.stats()
            return (f"nnsynth: pool generated {stats['generated']} cases ({stats['seconds_per_case']:.2f} s each) "
                    f"for {stats['served']} synthetic samples; served while starved: {stats['starved']}")
        return None

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()
        elif self.pool is not None:
            self.pool.close()
