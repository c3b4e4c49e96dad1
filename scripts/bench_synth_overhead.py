"""Iteration-time overhead of nnUNetTrainerSynth over nnUNetTrainerBudget on the same data and plans.

Runs the real `nnUNetv2_train` for both trainers in alternation (so drifting machine load hits both),
reads nnU-Net's own epoch times from the training logs (the first epoch is warm-up and dropped) and
the synthetic-case pool statistics, and prints a table:

    python scripts/bench_synth_overhead.py -d 990 -p nnsynthCPU --epochs 3 --iterations 30 --repeats 2

nnUNet_raw / nnUNet_preprocessed / nnUNet_results must point at a preprocessed dataset with
labelmapsTr (e.g. the demo cohort). Results go to a scratch results folder, not yours.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TRAINERS = ("nnUNetTrainerBudget", "nnUNetTrainerSynth")


def run(trainer: str, args: argparse.Namespace, results: Path, trainer_path: str) -> dict:
    env = {**os.environ, "nnUNet_results": str(results), "nnUNet_extTrainer": trainer_path,
           "nnUNet_n_proc_DA": os.environ.get("nnUNet_n_proc_DA", "0"), "nnUNet_def_n_proc": "1",
           "nnUNet_compile": "f", "NNSYNTH_EPOCHS": str(args.epochs), "NNSYNTH_ITERATIONS": str(args.iterations),
           "NNSYNTH_VAL_ITERATIONS": "1", "NNSYNTH_FINAL_VALIDATION": "0"}
    exe = str(Path(sys.executable).parent / "nnUNetv2_train")
    subprocess.run([exe, str(args.dataset_id), "3d_fullres", str(args.fold), "-tr", trainer, "-p", args.plans,
                    "-device", args.device], env=env, check=True, capture_output=True)
    log = "".join(p.read_text() for p in results.rglob(f"{trainer}__*/fold_{args.fold}/training_log_*.txt"))
    epochs = [float(x) for x in re.findall(r"Epoch time: ([0-9.]+) s", log)][1:]
    pool = re.search(r"pool generated (\d+) cases \(([0-9.]+) s each\) for (\d+) synthetic samples; "
                     r"served while starved: (\d+)", log)
    return {"s_per_iteration": statistics.mean(epochs) / args.iterations,
            "pool": None if pool is None else {"generated": int(pool[1]), "s_per_case": float(pool[2]),
                                               "served": int(pool[3]), "starved": int(pool[4])}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", type=int, required=True)
    p.add_argument("-p", "--plans", default="nnsynthCPU")
    p.add_argument("-f", "--fold", default="0")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    trainer_path = subprocess.run([str(Path(sys.executable).parent / "nnsynth"), "trainer-path"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    times: dict[str, list[float]] = {t: [] for t in TRAINERS}
    pools = []
    for r in range(args.repeats):
        for trainer in TRAINERS:
            with tempfile.TemporaryDirectory() as scratch:
                res = run(trainer, args, Path(scratch), trainer_path)
            times[trainer].append(res["s_per_iteration"])
            if res["pool"]:
                pools.append(res["pool"])
            print(f"repeat {r + 1}: {trainer}: {res['s_per_iteration']:.3f} s/iteration", flush=True)
    base = statistics.mean(times[TRAINERS[0]])
    print(f"\n| trainer | s / iteration (mean of {args.repeats}) | ratio to {TRAINERS[0]} |\n|---|---|---|")
    for trainer in TRAINERS:
        mean = statistics.mean(times[trainer])
        print(f"| {trainer} | {mean:.3f} | {mean / base:.3f} |")
    if pools:
        s_case = statistics.mean(x["s_per_case"] for x in pools)
        print(f"\nengine: {s_case:.3f} s per synthetic case in the background pool ({1 / s_case:.2f} cases/s); "
              f"generated {sum(x['generated'] for x in pools)} cases for {sum(x['served'] for x in pools)} samples, "
              f"served while starved: {sum(x['starved'] for x in pools)}")


if __name__ == "__main__":
    main()
