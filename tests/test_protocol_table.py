"""scripts/protocol_table.py: the seeds a CI half-width needs, and one candidate read from an experiment folder."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from scipy import stats

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("protocol_table", REPO / "scripts" / "protocol_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_for_half_width_is_the_smallest_n_that_fits():
    pt = _module()
    n = pt.seeds_for_half_width(0.06, 0.04)
    assert stats.t.ppf(0.975, n - 1) * 0.06 / math.sqrt(n) <= 0.04
    assert stats.t.ppf(0.975, n - 2) * 0.06 / math.sqrt(n - 1) > 0.04
    assert pt.seeds_for_half_width(0.01, 0.04) == 3  # t(0.975, 1) = 12.7 keeps n = 2 out
    assert pt.seeds_for_half_width(5.0, 0.04, max_seeds=50) is None


def _run(seed: int, arm: str, dice: float, seconds: float) -> dict:
    return {"n_real": 10, "seed": seed, "arm": arm, "dice": dice, "timings_seconds": {"train": seconds}}


def test_candidate_pairs_seeds_and_costs_both_arms(tmp_path):
    pt = _module()
    runs = [_run(0, "real", 0.40, 3600), _run(0, "inpaint", 0.45, 3600),
            _run(1, "real", 0.50, 3600), _run(1, "inpaint", 0.52, 3600),
            _run(2, "real", 0.30, 3600)]  # seed 2 has no inpaint run: left out of the pairs
    paired = [{"n_real": 10, "arm": "inpaint", "metric": "dice", "ci_low": -0.01, "ci_high": 0.07, "test_sd": 0.02}]
    (tmp_path / "results.json").write_text(json.dumps({"runs": runs, "paired": paired}))
    row = pt.candidate("long", tmp_path, "real", "inpaint", 10, 0.04, jobs=2)
    assert row["seeds"] == 2
    assert row["difference"] == pytest.approx(0.035)
    assert row["training_sd"] == pytest.approx(math.sqrt(2) * 0.015)
    assert row["half_width"] == pytest.approx(0.04)
    assert row["hours_per_seed"] == pytest.approx(1.0)  # two one-hour runs, two side by side
    assert row["reference_dice"] == pytest.approx(0.45)
    assert row["hours_for_target"] == pytest.approx(row["seeds_for_target"] * 1.0)
    assert "| long | 2 | +0.035 [-0.010, +0.070] |" in pt.markdown([row], "real", "inpaint", 0.04)


def test_a_paused_run_does_not_bill_its_pause(tmp_path):
    pt = _module()
    runs = [_run(s, a, 0.4, 3600) for s in range(3) for a in ("real", "inpaint")]
    runs[1]["timings_seconds"]["predict"] = 7 * 3600  # wall clock of a run stopped for seven hours
    (tmp_path / "results.json").write_text(json.dumps({"runs": runs, "paired": []}))
    row = pt.candidate("x", tmp_path, "real", "inpaint", 10, 0.04, jobs=2)
    assert row["hours_per_seed"] == pytest.approx(1.0)


def test_candidate_without_a_pair_is_refused(tmp_path):
    pt = _module()
    (tmp_path / "results.json").write_text(json.dumps({"runs": [_run(0, "real", 0.4, 10)], "paired": []}))
    with pytest.raises(SystemExit, match="no seed with both real and inpaint"):
        pt.candidate("x", tmp_path, "real", "inpaint", 10, 0.04, jobs=1)
    with pytest.raises(SystemExit, match="missing"):
        pt.candidate("x", tmp_path / "nothing", "real", "inpaint", 10, 0.04, jobs=1)
