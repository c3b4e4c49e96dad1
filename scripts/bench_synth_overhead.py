"""Iteration-time overhead of nnUNetTrainerSynth over nnUNetTrainerBudget on the same data and plans.

Runs the real `nnUNetv2_train` for both trainers in alternation (so drifting machine load hits both),
reads nnU-Net's own epoch times from the training logs (the first epoch is warm-up and dropped) and
the synthetic-case pool statistics, and prints a table:

    python scripts/bench_synth_overhead.py -d 990 -p nnsynthCPU --epochs 3 --iterations 30 --repeats 2

nnUNet_raw / nnUNet_preprocessed / nnUNet_results must point at a preprocessed dataset with
labelmapsTr (e.g. the demo cohort). Results go to a scratch results folder, not yours.
``train_and_time`` and ``alternate`` are shared with ``scripts/device_check.py`` (GPU check).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

TRAINERS = ("nnUNetTrainerBudget", "nnUNetTrainerSynth")
POOL_LINE = re.compile(r"pool generated (\d+) cases \(([0-9.]+) s each\) for (\d+) synthetic samples; "
                       r"served while starved: (\d+)")
FEED_LINE = re.compile(r"nnsynth: main process generated (\d+) cases for the workers")


class ProcessWatch(Protocol):
    """Something that samples a running training process (CPU, GPU) between start and stop."""

    def start(self, pid: int) -> None: ...

    def stop(self) -> dict[str, Any]: ...


def console_script(name: str) -> str:
    from nnsynth_experiments.pipeline import console_script as find

    return find(name)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a command started with ``start_new_session=True`` and all its children, then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def trainer_path() -> str:
    """The folder of trainer re-exports for nnUNet_extTrainer (what `nnsynth trainer-path` prints)."""
    from nnsynth_trainers.registration import trainer_path as shim

    return str(shim())


def parse_training_log(log: str, iterations: int) -> dict[str, Any]:
    """Epoch times (first dropped when there are several), s/iteration and the synthetic supply line."""
    epochs = [float(x) for x in re.findall(r"Epoch time: ([0-9.]+) s", log)]
    if not epochs:
        raise RuntimeError("no 'Epoch time' line in the nnU-Net training log")
    timed = epochs[1:] if len(epochs) > 1 else epochs
    pool = POOL_LINE.search(log)
    feed = FEED_LINE.search(log)
    return {"epoch_seconds": epochs, "first_epoch_dropped": len(epochs) > 1,
            "s_per_iteration": statistics.mean(timed) / iterations,
            "pool": None if pool is None else {"generated": int(pool[1]), "s_per_case": float(pool[2]),
                                               "served": int(pool[3]), "starved": int(pool[4])},
            "feed_generated": None if feed is None else int(feed[1])}


def train_and_time(trainer: str, *, dataset_id: int, plans: str, fold: str, device: str, epochs: int,
                   iterations: int, results: Path, n_proc_da: str = "0", val_iterations: int = 1,
                   generators: Path | None = None, dataset_name: str | None = None,
                   extra_env: dict[str, str] | None = None, watch: ProcessWatch | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
    """One `nnUNetv2_train` run into the scratch folder ``results``; its timings from nnU-Net's own log.

    ``generators`` (a dataset's ``nnsynth/`` checkpoint folder) is linked into the scratch results, so the
    learned variants find their checkpoints there. A run past ``timeout`` seconds is killed with its
    augmentation workers (its own process group) and reported as hung, with the end of its output.
    """
    if generators is not None:
        if dataset_name is None:
            raise ValueError("train_and_time: generators needs dataset_name")
        (results / dataset_name).mkdir(parents=True, exist_ok=True)
        link = results / dataset_name / "nnsynth"
        if not link.exists():
            link.symlink_to(Path(generators).resolve())
    env = {**os.environ, "nnUNet_results": str(results), "nnUNet_extTrainer": trainer_path(),
           "nnUNet_n_proc_DA": n_proc_da, "nnUNet_def_n_proc": "1", "nnUNet_compile": "f",
           "NNSYNTH_EPOCHS": str(epochs), "NNSYNTH_ITERATIONS": str(iterations),
           "NNSYNTH_VAL_ITERATIONS": str(val_iterations), "NNSYNTH_FINAL_VALIDATION": "0", **(extra_env or {})}
    exe = console_script("nnUNetv2_train")  # next to this interpreter, else on PATH (device: pip --target)
    console = results / f"{trainer}_console.txt"
    start = time.perf_counter()
    with open(console, "w") as out:
        proc = subprocess.Popen([exe, str(dataset_id), "3d_fullres", str(fold), "-tr", trainer, "-p", plans,
                                 "-device", device], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if watch is not None:
            watch.start(proc.pid)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            tail = console.read_text()[-3000:]
            raise RuntimeError(f"nnUNetv2_train {trainer} hung: killed after {timeout:.0f} s; end of {console}:\n"
                               f"{tail}") from None
        except BaseException:  # Ctrl-C, or SIGTERM turned into SystemExit: its own session would outlive us
            kill_group(proc)
            raise
        finally:
            sampled = watch.stop() if watch is not None else {}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = console.read_text()[-3000:]
        raise RuntimeError(f"nnUNetv2_train {trainer} failed (exit {proc.returncode}); end of {console}:\n{tail}")
    logs = sorted(results.rglob(f"{trainer}__{plans}__3d_fullres/fold_{fold}/training_log_*.txt"))
    if not logs:
        raise RuntimeError(f"nnUNetv2_train {trainer} wrote no training log under {results}")
    log = "".join(p.read_text() for p in logs)
    return {"trainer": trainer, "wall_seconds": wall, **parse_training_log(log, iterations), "sampled": sampled,
            "log": log}


def alternate(trainers: Sequence[str], repeats: int, run_one: Callable[[str, Path], dict[str, Any]],
              keep_going: Callable[[int], bool] | None = None,
              report: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every trainer once per repeat, in the same order (drifting load hits all), each in a fresh scratch folder.

    ``keep_going(r)`` is asked before repeat r > 0 (a time budget); the runs done so far are returned.
    """
    runs = []
    for r in range(repeats):
        if r > 0 and keep_going is not None and not keep_going(r):
            break
        for trainer in trainers:
            with tempfile.TemporaryDirectory(prefix="nnsynth_bench_") as scratch:
                res = run_one(trainer, Path(scratch))
            res["repeat"] = r
            runs.append(res)
            if report is not None:
                report(r, res)
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", type=int, required=True)
    p.add_argument("-p", "--plans", default="nnsynthCPU")
    p.add_argument("-f", "--fold", default="0")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--trainers", nargs="+", default=list(TRAINERS),
                   help=f"trainers to time, the first is the baseline (default: {' '.join(TRAINERS)})")
    args = p.parse_args()
    trainers = tuple(args.trainers)

    def run_one(trainer: str, scratch: Path) -> dict[str, Any]:
        return train_and_time(trainer, dataset_id=args.dataset_id, plans=args.plans, fold=args.fold,
                              device=args.device, epochs=args.epochs, iterations=args.iterations, results=scratch,
                              n_proc_da=os.environ.get("nnUNet_n_proc_DA", "0"))

    def say(r: int, res: dict[str, Any]) -> None:
        print(f"repeat {r + 1}: {res['trainer']}: {res['s_per_iteration']:.3f} s/iteration", flush=True)

    runs = alternate(trainers, args.repeats, run_one, report=say)
    times = {t: [x["s_per_iteration"] for x in runs if x["trainer"] == t] for t in trainers}
    pools = [x["pool"] for x in runs if x["pool"]]
    base = statistics.mean(times[trainers[0]])
    print(f"\n| trainer | s / iteration (mean of {args.repeats}) | ratio to {trainers[0]} |\n|---|---|---|")
    for trainer in trainers:
        mean = statistics.mean(times[trainer])
        print(f"| {trainer} | {mean:.3f} | {mean / base:.3f} |")
    if pools:
        s_case = statistics.mean(x["s_per_case"] for x in pools)
        print(f"\nengine: {s_case:.3f} s per synthetic case in the background pool ({1 / s_case:.2f} cases/s); "
              f"generated {sum(x['generated'] for x in pools)} cases for {sum(x['served'] for x in pools)} samples, "
              f"served while starved: {sum(x['starved'] for x in pools)}")


if __name__ == "__main__":
    main()
