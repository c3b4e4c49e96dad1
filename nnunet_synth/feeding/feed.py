"""Synthetic cases generated in the main process and handed to nnU-Net's forked augmentation workers.

With ``nnUNet_n_proc_DA > 0`` nnU-Net loads and augments batches in forked worker processes, where
CUDA must not be used. The feed keeps generation where the device is: a producer thread in the
main process renders cases (on the GPU when training there) into a multiprocessing queue; each
worker's CasePool fills its slots from that queue in its own background thread, so a worker never
generates and never blocks on the producer once it holds a case. The synthetic cases still go
through nnU-Net's cropping, oversampling and augmentation inside the workers.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable

import numpy as np


class FeedFailure:
    """What the producer puts on the queue when making a case failed (the workers re-raise it)."""

    def __init__(self, message: str):
        self.message = message


class CaseFeed:
    def __init__(self, make_case: Callable[[np.random.Generator], object], capacity: int = 8, seed: int = 0):
        self.make_case = make_case
        self.queue = multiprocessing.get_context("fork").Queue(maxsize=capacity)
        self.seed = seed
        self.produced = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Call in the main process before nnU-Net forks its workers."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="nnsynth-case-feed", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        rng = np.random.default_rng(self.seed)
        while not self._stop.is_set():
            try:
                case = self.make_case(rng)
            except Exception as exc:  # a dead producer must not leave every worker waiting on the queue
                case = FeedFailure(f"{type(exc).__name__}: {exc}")
                self._stop.set()
                self.queue.put(case)
                return
            while not self._stop.is_set():
                try:
                    self.queue.put(case, timeout=0.5)
                    self.produced += 1
                    break
                except queue.Full:
                    continue

    def take(self, rng: np.random.Generator | None = None):
        """Blocking read, for a worker's CasePool (its `make_case`); raises what the producer failed with."""
        case = self.queue.get()
        if isinstance(case, FeedFailure):
            self.queue.put(case)  # for the other workers too
            raise RuntimeError(f"nnsynth: making a synthetic case failed in the main process: {case.message}")
        return case

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.queue.cancel_join_thread()
