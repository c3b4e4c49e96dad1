"""Paired comparison of two arms trained on the same subsamples and scored on the same test cases.

Every arm of a (number of real cases, seed) pair trains on the same subsample, and every run is scored
on the same test cases, so the comparison is paired twice: per seed (training noise) and per test case
(test noise). The difference ``arm - reference`` of a metric is summarized by

- a 95% confidence interval from a hierarchical bootstrap over both noise sources: resample the seeds,
  then the test cases, once per replicate for all its seeds (every seed is scored on the same cases),
  and average the per-case differences;
- a paired t-test over the per-seed mean differences (two-sided; needs at least 2 seeds);
- a verdict, 'helps' or 'hurts', only when the CI excludes 0 and the t-test agrees (p < 0.05);
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


def verdict(metric: str, n_seeds: int, ci_low: float, ci_high: float, p_value: float | None = None) -> str:
    """'helps', 'hurts' or 'cannot tell at this power'; one seed never decides.

    Decided only when the bootstrap CI excludes 0 *and* the paired t-test over seeds has p < 0.05 (p is
    None only when every seed gave the same difference). With few seeds the percentile bootstrap is too
    narrow: 3 seeds have only 10 distinct resamples, so its CI can exclude 0 where a t-interval with
    2 degrees of freedom spans it widely.
    """
    if n_seeds < 2:
        return "one run per arm: cannot tell (training noise is not measured)"
    if p_value is not None and p_value >= 0.05:
        return "cannot tell at this power"
    better_high = HIGHER_IS_BETTER.get(metric, True)
    if ci_low > 0:
        return "helps" if better_high else "hurts"
    if ci_high < 0:
        return "hurts" if better_high else "helps"
    return "cannot tell at this power"


def paired_difference(reference: Mapping[int, Mapping[str, float]], arm: Mapping[int, Mapping[str, float]],
                      metric: str = "dice", n_boot: int = 4000, seed: int = 0) -> PairedDifference:
    """reference, arm: {seed: {test case: metric value}}; only seeds and cases present in both are paired.

    The bootstrap is crossed, as the design is: every seed is scored on the same test cases, so one
    replicate draws the seeds and, once, the test cases, and scores every drawn seed on the same drawn
    cases (a case that is hard for one seed is hard for all; resampling cases apart per seed would
    average that shared case effect away and make the CI too narrow).
    """
    from scipy import stats

    seeds = sorted(set(reference) & set(arm))
    rows: dict[int, dict[str, float]] = {}
    for s in seeds:
        pairs = {c: arm[s][c] - reference[s][c] for c in set(reference[s]) & set(arm[s])
                 if reference[s][c] is not None and arm[s][c] is not None}
        pairs = {c: d for c, d in pairs.items() if math.isfinite(d)}
        if pairs:
            rows[s] = pairs
    if not rows:
        raise ValueError("no seed and test case is scored in both arms")
    cases = sorted({c for pairs in rows.values() for c in pairs})
    matrix = np.full((len(rows), len(cases)), np.nan)  # seeds x test cases; NaN: not scored in both arms
    for i, pairs in enumerate(rows.values()):
        for j, c in enumerate(cases):
            matrix[i, j] = pairs.get(c, np.nan)
    scored = ~np.isnan(matrix)
    filled = np.where(scored, matrix, 0.0)
    per_seed = np.nanmean(matrix, axis=1)
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for b in range(n_boot):
        si = rng.integers(len(rows), size=len(rows))
        ci = rng.integers(len(cases), size=len(cases))
        values, counts = filled[np.ix_(si, ci)].sum(1), scored[np.ix_(si, ci)].sum(1)
        kept = counts > 0  # a draw of cases none of which this seed scored says nothing about it
        boot[b] = np.mean(values[kept] / counts[kept]) if kept.any() else np.nan
    lo, hi = (float(v) for v in np.nanpercentile(boot, [2.5, 97.5]))
    diffs = [matrix[i][scored[i]] for i in range(len(rows))]
    test_sd = float(np.mean([np.std([d[rng.integers(d.size, size=d.size)].mean() for _ in range(500)])
                             for d in diffs]))
    p_value = None
    if len(per_seed) >= 2:
        p_value = 1.0 if np.allclose(per_seed, per_seed[0]) and per_seed[0] == 0 else \
            float(stats.ttest_1samp(per_seed, 0.0).pvalue)
        if not math.isfinite(p_value):
            p_value = None
    better = int((per_seed > 0).sum() if HIGHER_IS_BETTER.get(metric, True) else (per_seed < 0).sum())
    return PairedDifference(metric=metric, n_seeds=len(rows), n_cases=int(np.mean([d.size for d in diffs])),
                            mean_difference=float(per_seed.mean()), ci_low=lo, ci_high=hi, p_value=p_value,
                            seeds_better=better,
                            training_sd=float(per_seed.std(ddof=1)) if len(per_seed) > 1 else None,
                            test_sd=test_sd, verdict=verdict(metric, len(rows), lo, hi, p_value))
