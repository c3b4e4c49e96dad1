import threading
import time

import numpy as np
import pytest

from nnunet_synth.feeding.pool import CasePool


def test_pool_serves_each_case_at_most_max_uses_when_generation_keeps_up():
    made = []

    def make(rng):
        made.append(rng.integers(1 << 30))
        return made[-1]

    pool = CasePool(make, size=4, max_uses=3, seed=0)
    served = []
    for _ in range(60):
        served.append(pool.get())
        time.sleep(0.002)  # a "training step": the thread keeps up
    pool.close()
    counts = {c: served.count(c) for c in set(served)}
    assert max(counts.values()) <= 3
    assert pool.stats()["served"] == 60 and pool.stats()["starved"] == 0
    assert len(set(served)) >= 20   # the pool keeps refreshing


def test_slow_generator_never_blocks_after_the_first_case():
    gate = threading.Event()

    def make(rng):
        if pool.generated >= 1:
            gate.wait(5)           # the second case takes "forever"
        return rng.random()

    pool = CasePool(make, size=4, max_uses=2, seed=1)
    start = time.perf_counter()
    served = [pool.get() for _ in range(10)]
    elapsed = time.perf_counter() - start
    gate.set()
    pool.close()
    assert elapsed < 2.0
    assert len(set(served)) == 1 and pool.stats()["starved"] == 8


def test_invalid_sizes_are_refused():
    with pytest.raises(ValueError):
        CasePool(lambda rng: np.zeros(1), size=0)


def _first_case_in_child(pool, queue):
    queue.put(pool.get())


def test_forked_workers_generate_different_cases():
    """nnU-Net forks its augmentation workers: each must run its own pool with its own seed."""
    import multiprocessing

    pool = CasePool(lambda rng: float(rng.random()), size=2, max_uses=1)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_first_case_in_child, args=(pool, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    values = [queue.get(timeout=20) for _ in workers]
    for w in workers:
        w.join(timeout=20)
    assert values[0] != values[1]


def test_fixed_seed_without_threads_is_reproducible():
    a = CasePool(lambda rng: float(rng.random()), size=1, max_uses=1, seed=5)
    first = a.get()
    a.close()
    b = CasePool(lambda rng: float(rng.random()), size=1, max_uses=1, seed=5)
    assert b.get() == first
    b.close()


def test_cases_holding_arrays_of_different_shapes_are_retired():
    """Cases are numpy volumes of varying shape; retiring one must not compare arrays."""
    pool = CasePool(lambda rng: np.zeros((2, int(rng.integers(3, 9)), 4)), size=3, max_uses=1, seed=2)
    shapes = set()
    for _ in range(30):
        shapes.add(pool.get().shape)
        time.sleep(0.002)
    pool.close()
    assert len(shapes) > 1 and pool.stats()["served"] == 30


def test_a_failing_generator_is_raised_where_cases_are_taken_instead_of_hanging():
    from nnunet_synth.feeding.feed import CaseFeed

    def broken(rng):
        raise ValueError("the host has no parenchyma voxels")

    pool = CasePool(broken, size=2, max_uses=1, seed=0)
    with pytest.raises(RuntimeError, match="no parenchyma"):
        pool.get()
    pool.close()
    feed = CaseFeed(broken, capacity=2, seed=0)
    feed.start()
    for _ in range(2):  # every worker that asks learns it, not only the first
        with pytest.raises(RuntimeError, match="failed in the main process: ValueError"):
            feed.take()
    feed.close()
