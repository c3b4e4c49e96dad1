"""Paired comparison of two arms trained on the same subsamples and scored on the same test cases.

Every arm of a (number of real cases, seed) pair trains on the same subsample, and every run is scored
on the same test cases, so the comparison is paired twice: per seed (training noise) and per test case
(test noise). The difference ``arm - reference`` of a metric is summarized by

- a 95% confidence interval from a hierarchical bootstrap: resample the seeds, then the test cases
  within each resampled seed, and average the per-case differences;
- a paired t-test over the per-seed mean differences (two-sided; needs at least 2 seeds);
- the number of seeds where the arm is better;
- the two noise sources: the sd of the per-seed mean differences (training noise) and the bootstrap sd
  over test cases within a seed (test noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

# metric -> True when larger is better
HIGHER_IS_BETTER = {"dice": True, "lesion_f1": True, "abs_volume_diff_ml": False, "abs_count_diff": False}


@dataclass
class PairedDifference:
    metric: str
    n_seeds: int
    n_cases: int
    mean_difference: float  # arm - reference, averaged over seeds and cases
    ci_low: float
    ci_high: float
    p_value: float | None  # paired t-test over seeds; None with one seed
    seeds_better: int
    training_sd: float | None  # sd over seeds of the per-seed mean difference
    test_sd: float  # bootstrap sd over test cases of a seed's mean difference (averaged over seeds)
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(metric: str, n_seeds: int, ci_low: float, ci_high: float) -> str:
    """'helps', 'hurts' or 'cannot tell at this power', from the CI alone; one seed never decides."""
    if n_seeds < 2:
        return "one run per arm: cannot tell (training noise is not measured)"
    better_high = HIGHER_IS_BETTER.get(metric, True)
    if ci_low > 0:
        return "helps" if better_high else "hurts"
    if ci_high < 0:
        return "hurts" if better_high else "helps"
    return "cannot tell at this power"


def paired_difference(reference: Mapping[int, Mapping[str, float]], arm: Mapping[int, Mapping[str, float]],
                      metric: str = "dice", n_boot: int = 4000, seed: int = 0) -> PairedDifference:
    """reference, arm: {seed: {test case: metric value}}; only seeds and cases present in both are paired."""
    from scipy import stats

    seeds = sorted(set(reference) & set(arm))
    diffs = []
    for s in seeds:
        cases = sorted(set(reference[s]) & set(arm[s]))
        d = np.array([arm[s][c] - reference[s][c] for c in cases
                      if reference[s][c] is not None and arm[s][c] is not None], float)
        d = d[np.isfinite(d)]
        if d.size:
            diffs.append(d)
    if not diffs:
        raise ValueError("no seed and test case is scored in both arms")
    rng = np.random.default_rng(seed)
    per_seed = np.array([d.mean() for d in diffs])
    boot = np.empty(n_boot)
    for b in range(n_boot):
        picked = rng.integers(len(diffs), size=len(diffs))
        boot[b] = np.mean([diffs[i][rng.integers(diffs[i].size, size=diffs[i].size)].mean() for i in picked])
    lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    test_sd = float(np.mean([np.std([d[rng.integers(d.size, size=d.size)].mean() for _ in range(500)])
                             for d in diffs]))
    p_value = None
    if len(per_seed) >= 2:
        p_value = 1.0 if np.allclose(per_seed, per_seed[0]) and per_seed[0] == 0 else \
            float(stats.ttest_1samp(per_seed, 0.0).pvalue)
        if not math.isfinite(p_value):
            p_value = None
    better = int((per_seed > 0).sum() if HIGHER_IS_BETTER.get(metric, True) else (per_seed < 0).sum())
    return PairedDifference(metric=metric, n_seeds=len(diffs), n_cases=int(np.mean([d.size for d in diffs])),
                            mean_difference=float(per_seed.mean()), ci_low=lo, ci_high=hi, p_value=p_value,
                            seeds_better=better,
                            training_sd=float(per_seed.std(ddof=1)) if len(per_seed) > 1 else None,
                            test_sd=test_sd, verdict=verdict(metric, len(diffs), lo, hi))
