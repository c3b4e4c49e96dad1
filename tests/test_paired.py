"""Paired comparison of arms: hierarchical bootstrap CI, paired t over seeds, verdicts from the CI and the t-test."""

import numpy as np
import pytest

from nnsynth_experiments.report import headline, paired_markdown, paired_rows
from nnunet_synth.evaluation.paired import paired_difference


def _scores(base: float, shift: float, seeds: int, cases: int = 20, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref, arm = {}, {}
    for s in range(seeds):
        training = rng.normal(0, 0.02)  # a seed's training noise, shared by its test cases
        values = rng.uniform(0.3, 0.7, cases)
        ref[s] = {f"c{c}": float(v) for c, v in enumerate(values)}
        arm[s] = {f"c{c}": float(v + shift + training + rng.normal(0, noise)) for c, v in enumerate(values)}
    return ref, arm


def test_a_clear_gain_is_called_helps_and_counted_per_seed():
    ref, arm = _scores(0.5, 0.1, seeds=5)
    d = paired_difference(ref, arm, "dice")
    assert d.verdict == "helps" and d.ci_low > 0.05 and d.ci_high < 0.15 and d.seeds_better == 5
    assert d.p_value is not None and d.p_value < 0.01
    assert d.n_seeds == 5 and d.n_cases == 20 and d.training_sd is not None and d.test_sd > 0


def test_no_difference_cannot_tell_and_one_seed_never_decides():
    ref, arm = _scores(0.5, 0.0, seeds=4)
    d = paired_difference(ref, arm, "dice")
    assert d.ci_low < 0 < d.ci_high and d.verdict == "cannot tell at this power"
    one = paired_difference({0: ref[0]}, {0: {k: v + 0.2 for k, v in ref[0].items()}}, "dice")
    assert one.p_value is None and one.training_sd is None and one.verdict.startswith("one run per arm")


def test_lower_is_better_metrics_flip_the_verdict():
    ref, arm = _scores(5.0, -1.0, seeds=4)
    d = paired_difference(ref, arm, "abs_volume_diff_ml")
    assert d.mean_difference < 0 and d.verdict == "helps" and d.seeds_better == 4


def test_only_shared_seeds_and_cases_are_paired():
    ref, arm = _scores(0.5, 0.1, seeds=3)
    arm[7] = {"c0": 1.0}  # a seed the reference never ran
    del arm[0]["c3"]
    d = paired_difference(ref, arm, "dice")
    assert d.n_seeds == 3
    with pytest.raises(ValueError, match="no seed"):
        paired_difference({0: {"a": 0.1}}, {1: {"a": 0.2}})


def test_report_rows_table_and_headline():
    ref, arm = _scores(0.5, 0.1, seeds=3)
    results, per_case = [], {}
    for s in range(3):
        for name, side in (("real", ref), ("synth", arm)):
            run = f"n010_seed{s}_{name}"
            results.append({"name": run, "n_real": 10, "seed": s, "arm": name})
            per_case[run] = {c: {"dice": v, "lesion_f1": v, "abs_volume_diff_ml": 1 - v} for c, v in side[s].items()}
    rows = paired_rows(results, per_case)
    assert {r["metric"] for r in rows} == {"dice", "lesion_f1", "abs_volume_diff_ml"}
    dice = next(r for r in rows if r["metric"] == "dice")
    assert dice["arm"] == "synth" and dice["reference"] == "real" and dice["verdict"] == "helps"
    table = paired_markdown(rows)
    assert "| 10 | synth | Dice (ISLES) | +0.1" in table and "3/3" in table
    assert headline(rows).startswith("synth - real at 10 real cases: Dice +0.1") and "helps" in headline(rows)
    assert headline([]) == "No paired comparison (only one arm)."


def test_stratified_rows_by_lesion_size_and_false_positives_on_lesion_free_cases():
    from nnsynth_experiments.report import stratified_markdown, stratified_rows

    per_case = {"r": {"small": {"gt_volume_ml": 0.5, "dice": 0.2, "lesion_f1": 0.5, "pred_volume_ml": 1.0,
                                "pred_count": 1},
                      "big": {"gt_volume_ml": 20.0, "dice": 0.8, "lesion_f1": 1.0, "pred_volume_ml": 18.0,
                              "pred_count": 1},
                      "free1": {"gt_volume_ml": 0.0, "dice": 1.0, "lesion_f1": 1.0, "pred_volume_ml": 0.0,
                                "pred_count": 0},
                      "free2": {"gt_volume_ml": 0.0, "dice": 0.0, "lesion_f1": 0.0, "pred_volume_ml": 3.0,
                                "pred_count": 2}}}
    rows = stratified_rows([{"name": "r", "n_real": 10, "seed": 0, "arm": "real"}], per_case)
    by = {r["stratum"]: r for r in rows}
    assert set(by) == {"< 1 ml", "> 10 ml", "lesion-free"}
    assert by["< 1 ml"]["dice"] == 0.2 and by["> 10 ml"]["lesion_f1"] == 1.0
    assert by["lesion-free"]["fp_volume_ml"] == 1.5 and by["lesion-free"]["fp_case_share"] == 0.5
    assert "| 10 | real | none | 2 | | | 1.50 | 50% |" in stratified_markdown(rows)


def test_a_run_that_never_learned_is_named_and_its_seed_left_out_of_the_second_comparison():
    """The evidence experiment's real-only seed 3 predicted nothing; a failed reference must not pass for a gain."""
    from nnsynth_experiments.report import failed_runs, failed_runs_markdown, without_failed_seeds

    ref, arm = _scores(0.5, 0.0, seeds=3)
    results, per_case = [], {}
    for s in range(3):
        for name, side in (("real", ref), ("synth", arm)):
            run = f"n010_seed{s}_{name}"
            failed = name == "real" and s == 2
            results.append({"name": run, "n_real": 10, "seed": s, "arm": name, "gt_volume_ml": 5.0,
                            "dice_nnunet": 0.0 if failed else 0.5, "pred_volume_ml": 0.0 if failed else 4.0})
            per_case[run] = {c: {"dice": 0.0 if failed else v} for c, v in side[s].items()}
    assert [r["name"] for r in failed_runs(results)] == ["n010_seed2_real"]
    assert {(r["seed"], r["arm"]) for r in without_failed_seeds(results)} == {(s, a) for s in (0, 1)
                                                                              for a in ("real", "synth")}
    section = failed_runs_markdown(results, per_case, "real")
    assert "`n010_seed2_real`" in section and "| 10 | synth | Dice (ISLES) |" in section and "/2 |" in section
    with_failed = next(r for r in paired_rows(results, per_case) if r["metric"] == "dice")
    assert with_failed["n_seeds"] == 3 and with_failed["mean_difference"] > 0.1  # the failure looks like a gain
    assert failed_runs_markdown(without_failed_seeds(results), per_case, "real") == ""
    # a lesion-free test set cannot show a failure: nothing to learn
    assert failed_runs([{**results[0], "gt_volume_ml": 0.0, "dice_nnunet": 0.0}]) == []


def test_three_seeds_need_the_t_test_too():
    """A narrow bootstrap CI over 3 seeds whose per-seed differences spread widely does not decide."""
    ref = {s: {f"c{c}": 0.5 for c in range(20)} for s in range(3)}
    arm = {s: {f"c{c}": 0.5 + shift for c in range(20)} for s, shift in enumerate((-0.01, -0.02, -0.30))}
    d = paired_difference(ref, arm, "dice")
    assert d.ci_high < 0 and d.p_value > 0.05  # the percentile bootstrap alone would call it 'hurts'
    assert d.verdict == "cannot tell at this power"


def test_the_case_resample_is_shared_by_the_seeds():
    """Case effects shared by all seeds widen the CI: one hard case is hard for every seed."""
    rng = np.random.default_rng(1)
    case_effect = rng.normal(0, 0.2, 30)
    ref = {s: {f"c{c}": 0.5 for c in range(30)} for s in range(6)}
    arm = {s: {f"c{c}": 0.5 + 0.02 + case_effect[c] + rng.normal(0, 0.01) for c in range(30)} for s in range(6)}
    d = paired_difference(ref, arm, "dice")
    half_width = (d.ci_high - d.ci_low) / 2
    # the CI reflects the case sd / sqrt(30) of one shared test set (~0.036), not that / sqrt(6 * 30)
    assert half_width > 1.96 * case_effect.std() / np.sqrt(30) * 0.7
