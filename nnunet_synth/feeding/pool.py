"""A pool of synthetic cases refreshed by a background thread, for training on the CPU.

On a CPU, rendering a case costs about as much as a training step, so generating one per
request would slow nnU-Net down by that much. The pool keeps ``size`` cases; each is served at most
``max_uses`` times (every use gets its own nnU-Net crop and augmentation, so reuse still gives new
samples) and is replaced in the background. When the generator falls behind, the least-used case
is served again rather than blocking the training step; ``starved`` counts those. Only an empty
pool (the first request) waits.

The thread is started lazily and per process, so nnU-Net's forked augmentation workers each run
their own pool (threads do not survive a fork).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)   # slots are removed by identity: cases hold numpy arrays
class _Slot:
    case: object
    uses: int = 0


class CasePool:
    def __init__(self, make_case: Callable[[np.random.Generator], object], size: int = 16, max_uses: int = 4,
                 seed: int | None = None):
        if size < 1 or max_uses < 1:
            raise ValueError("pool size and max_uses must be >= 1")
        self.make_case = make_case
        self.size = size
        self.max_uses = max_uses
        self.seed = seed
        self.generated = self.served = self.starved = 0
        self.generation_seconds = 0.0
        self._pid = None

    def _start(self) -> None:
        self._pid = os.getpid()
        self._slots: list[_Slot] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._error: str | None = None
        seed = self.seed if self.seed is not None else np.random.randint(0, 2**31 - 1)
        self._rng = np.random.default_rng([seed, self._pid])
        self._pick = np.random.default_rng([seed, self._pid, 1])
        self._thread = threading.Thread(target=self._fill, name="nnsynth-case-pool", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while len(self._slots) >= self.size and not self._stop.is_set():
                    self._lock.wait(timeout=0.5)
            if self._stop.is_set():
                return
            start = time.perf_counter()
            try:
                case = self.make_case(self._rng)
            except Exception as exc:  # surfaces in get(): a dead filler must not leave the loader waiting
                with self._lock:
                    self._error = f"{type(exc).__name__}: {exc}"
                    self._lock.notify_all()
                return
            with self._lock:
                self.generation_seconds += time.perf_counter() - start
                self.generated += 1
                self._slots.append(_Slot(case))
                self._lock.notify_all()

    def get(self):
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            while not self._slots:
                if self._error is not None:
                    raise RuntimeError(f"nnsynth: making a synthetic case failed: {self._error}")
                self._lock.wait(timeout=0.5)
            fresh = [s for s in self._slots if s.uses < self.max_uses]
            if fresh:
                slot = fresh[self._pick.integers(len(fresh))]
            else:
                slot = min(self._slots, key=lambda s: s.uses)
                self.starved += 1
            slot.uses += 1
            self.served += 1
            if slot.uses >= self.max_uses and len(self._slots) > 1:
                self._slots.remove(slot)   # retire it; the thread makes a replacement
                self._lock.notify_all()
            return slot.case

    def stats(self) -> dict[str, float]:
        return {"generated": self.generated, "served": self.served, "starved": self.starved,
                "seconds_per_case": self.generation_seconds / max(self.generated, 1)}

    def close(self) -> None:
        if self._pid == os.getpid():
            self._stop.set()
            with self._lock:
                self._lock.notify_all()
            self._thread.join(timeout=5)
