"""scripts/cross_budget.py: arms of two experiment folders paired by seed, refused when the subsamples differ."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_CASES = [f"t{i}" for i in range(4)]


def _module():
    spec = importlib.util.spec_from_file_location("cross_budget", REPO / "scripts" / "cross_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folder(root: Path, epochs: int, arms: dict[str, dict[int, list[float]]], subsets: dict[str, list[str]]) -> Path:
    """An experiment folder: experiment.json, and per run result.json + per-case stroke metrics."""
    root.mkdir()
    design = {"profile": {"epochs": epochs, "iterations": 25}, "test_set": {"cases": TEST_CASES},
              "subsets": {k: {"fold": 5 + i, "cases": v} for i, (k, v) in enumerate(subsets.items())}}
    (root / "experiment.json").write_text(json.dumps(design))
    for arm, seeds in arms.items():
        for seed, dice in seeds.items():
            name = f"n010_seed{seed}_{arm}"
            run = root / "runs" / name
            (run / "predictions").mkdir(parents=True)
            (run / "result.json").write_text(json.dumps({"n_real": 10, "seed": seed, "arm": arm, "name": name,
                                                         "extra_tests": {}}))
            per_case = {c: {"dice": d, "lesion_f1": d, "abs_volume_diff_ml": 1.0} for c, d in zip(TEST_CASES, dice)}
            (run / "predictions" / "stroke_metrics.json").write_text(json.dumps({"per_case": per_case}))
    return root


SUBSETS = {"n10_seed0": ["a", "b"], "n10_seed1": ["c", "d"]}


def test_arms_of_two_budgets_are_paired_by_seed_and_case(tmp_path):
    cb = _module()
    short = _folder(tmp_path / "short", 60, {"real": {0: [0.4] * 4, 1: [0.5] * 4}}, SUBSETS)
    long = _folder(tmp_path / "long", 120, {"inpaint": {0: [0.5] * 4, 1: [0.6, 0.6, 0.6, 0.6]},
                                            "real": {0: [0.45] * 4}}, SUBSETS)
    reference, arm = cb.Side("real60", short, "real"), cb.Side("inpaint120", long, "inpaint")
    rows = cb.compare(reference, arm, ["in-domain"])
    dice = next(r for r in rows if r["metric"] == "dice")
    assert dice["n_seeds"] == 2
    assert dice["mean_difference"] == pytest.approx(0.1)
    assert dice["ci_low"] == pytest.approx(0.1) and dice["verdict"] == "helps"
    volume = next(r for r in rows if r["metric"] == "abs_volume_diff_ml")
    assert volume["mean_difference"] == pytest.approx(0.0)
    # only the seeds both sides finished are paired
    only_seed0 = cb.compare(reference, cb.Side("real120", long, "real"), ["in-domain"])
    assert only_seed0[0]["n_seeds"] == 1 and only_seed0[0]["mean_difference"] == pytest.approx(0.05)
    assert "| inpaint120 - real60 | 10 | in-domain | Dice (ISLES) | 2 | +0.100 [+0.100, +0.100]" in \
        cb.markdown(rows, {"real60": reference, "inpaint120": arm})


def test_different_subsamples_or_test_sets_are_not_paired(tmp_path):
    cb = _module()
    short = _folder(tmp_path / "short", 60, {"real": {0: [0.4] * 4}}, SUBSETS)
    other = _folder(tmp_path / "other", 120, {"inpaint": {0: [0.5] * 4}}, {"n10_seed0": ["a", "z"]})
    with pytest.raises(SystemExit, match="n10_seed0: real60 and inpaint120 trained on different cases"):
        cb.compare(cb.Side("real60", short, "real"), cb.Side("inpaint120", other, "inpaint"), ["in-domain"])
    design = json.loads((other / "experiment.json").read_text())
    design["test_set"]["cases"] = TEST_CASES[:3]
    (other / "experiment.json").write_text(json.dumps(design))
    with pytest.raises(SystemExit, match="different test sets"):
        cb.compare(cb.Side("real60", short, "real"), cb.Side("inpaint120", other, "inpaint"), ["in-domain"])


def test_the_command_line_writes_markdown_and_json(tmp_path):
    cb = _module()
    short = _folder(tmp_path / "short", 60, {"real": {0: [0.4] * 4, 1: [0.5] * 4}}, SUBSETS)
    long = _folder(tmp_path / "long", 120, {"inpaint": {0: [0.3] * 4, 1: [0.4] * 4}}, SUBSETS)
    out = tmp_path / "cross.md"
    assert cb.main([f"a={short}:real", f"b={long}:inpaint", "--pairs", "b-a", "-o", str(out)]) == 0
    assert "| b - a | 10 | in-domain | Dice (ISLES) | 2 | -0.100" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())[0]["verdict"] == "hurts"
    with pytest.raises(SystemExit):
        cb.main([f"a={short}:real", "--pairs", "b-a", "-o", str(out)])


def test_extra_test_sets_pair_only_when_both_folders_scored_the_same_labels(tmp_path):
    cb = _module()
    short = _folder(tmp_path / "short", 60, {"real": {0: [0.4] * 4}}, SUBSETS)
    long = _folder(tmp_path / "long", 120, {"inpaint": {0: [0.5] * 4}}, SUBSETS)
    for folder, labels in ((short, "/data/site-b/labelsTs"), (long, "/data/site-c/labelsTs")):
        design = json.loads((folder / "experiment.json").read_text())
        design["extra_tests"] = {"site": {"images": "x", "labels": labels}}
        (folder / "experiment.json").write_text(json.dumps(design))
    with pytest.raises(SystemExit, match="extra test set 'site'.*not paired"):
        cb.compare(cb.Side("a", short, "real"), cb.Side("b", long, "inpaint"), ["in-domain", "site"])
    assert cb.compare(cb.Side("a", short, "real"), cb.Side("b", long, "inpaint"), ["in-domain"])
