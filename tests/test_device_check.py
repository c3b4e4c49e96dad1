"""The GPU check's dry run: `scripts/device_check.sh --device cpu --tiny` runs every step on the CPU.

The device check (issue #12) can only produce its CUDA figures on the GPU machine; here the same script,
the same steps and the same report writer run at tiny sizes, and the report's content is checked.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STEPS = ("environment", "dataset", "throughput", "generators", "overhead", "paper")
TRAINERS = ("nnUNetTrainerBudget", "nnUNetTrainerSynth", "nnUNetTrainerSynthPix2pix", "nnUNetTrainerSynthSPADE")


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.slow
def test_device_check_dry_run(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OUT": str(out), "NNSYNTH_DEVICE_WORK": str(work), "NNSYNTH_PYTHON": sys.executable,
           "NNSYNTH_CHECK_SECONDS": "900", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "device_check.sh"), "--device", "cpu", "--tiny"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"device_check.sh failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    report = json.loads((out / "device_check.json").read_text())
    md = (out / "device_check.md").read_text()
    assert report["mode"] == "cpu tiny" and report["gpu_figures_measured"] is False
    assert {s: report["steps"][s]["status"] for s in STEPS} == {s: "ok" for s in STEPS}
    assert all(_finite(report["steps"][s]["seconds"]) for s in STEPS) and _finite(report["wall_seconds"])
    assert report["environment"]["torch"] and report["environment"]["packages"]["nnunetv2"]

    rows = report["throughput"]["rows"]
    assert {r["generator"] for r in rows} == {"gaussian_mixture", "pix2pix", "spade", "maskgan"}
    assert {tuple(r["size"]) for r in rows} == {(32, 32, 16), tuple(report["dataset"]["default_patch_size"])}
    assert all(_finite(r["ms_per_case"]) and r["ms_per_case"] > 0 and _finite(r["cases_per_s"]) for r in rows)

    gens = report["generators"]
    assert set(gens) == {"maskgan", "pix2pix", "spade"}
    assert all(Path(g["path"]).is_file() for g in gens.values())
    assert _finite(gens["spade"]["train_seconds"])  # a 6 mm cohort matches no embedded generator

    ov = report["overhead"]
    assert [r["trainer"] for r in ov["rows"]] == list(TRAINERS)
    for row in ov["rows"]:
        assert _finite(row["s_per_iteration"]) and row["s_per_iteration"] > 0 and _finite(row["ratio"])
        assert _finite(row["main_process_cpu"])  # /proc sampling works on any Linux
    for row in ov["rows"][1:]:
        assert row["feed_generated"] >= 1 and _finite(row["feed_coverage"]) and row["bottleneck"]
        assert isinstance(row["goal_met"], bool)
    assert ov["rows"][0]["ratio"] == pytest.approx(1.0)

    paper = report["paper"]
    assert {r["name"].rsplit("_", 1)[-1] for r in paper["runs"]} == {"real", "synth"}
    assert all(_finite(r["train_seconds"]) for r in paper["runs"])

    for heading in ("## 1. Generation throughput", "## 2. Overhead of the synthetic trainers",
                    "## 3. Paper profile, short", "nnUNetTrainerSynthSPADE"):
        assert heading in md
