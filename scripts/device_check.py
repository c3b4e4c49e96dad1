#!/usr/bin/env python
"""The project's GPU path measured in one run: generation throughput, trainer overhead, the paper profile.

Run through ``bash scripts/device_check.sh`` (which installs what the machine lacks first). Steps, each
timed, each written to ``OUT/device_check.json`` and ``OUT/device_check.md`` as soon as it ends (so a
run cut short still reports what it measured):

1. environment: Python, torch, CUDA, cuDNN, GPU, driver, cores, package versions;
2. dataset: the demo cohort (``nnsynth demo-cohort``) planned and preprocessed with nnU-Net's DEFAULT
   ``nnUNetPlans`` (``--tiny``: a 6 mm cohort and shrunk plans, for the CPU dry run);
3. throughput: ms/case and cases/s of the Gaussian-mixture renderer (numpy, on the CPU), pix2pix-3D and
   SPADE-3D (``TranslatorRenderer``, random weights of the default configs: speed does not depend on the
   weights) and mask-GAN sampling (``MaskSampler``), at 128x128x32 and at the dataset's default 3d_fullres
   patch, timed with ``torch.cuda.synchronize``; beside it the CPU figures of docs/device/cpu_reference.json;
4. generators: the fold's mask GAN / pix2pix / SPADE checkpoints (the demo cohort gets the embedded mask GAN
   and pix2pix; SPADE, which has none, is trained briefly with ``nnsynth train-translator --arch spade``);
5. overhead: ``nnUNetv2_train`` of nnUNetTrainerBudget, nnUNetTrainerSynth, ...SynthPix2pix and ...SynthSPADE
   in alternation (``scripts/bench_synth_overhead.py``), first epoch dropped, seconds per iteration and the
   ratio to the baseline, with GPU utilisation (nvidia-smi), CPU use of the main process and of the
   augmentation workers (/proc) and the synthetic feed's count, to say which side is the bottleneck;
6. paper: one short ``nnsynth experiment --profile paper`` (real and synth arms), the runner's path end to end.

    bash scripts/device_check.sh                          # on the GPU machine
    bash scripts/device_check.sh --device cpu --tiny      # the same steps, tiny, on a CPU
    python scripts/device_check.py --device cpu --write-cpu-reference docs/device/cpu_reference.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

import bench_synth_overhead as overhead_bench  # noqa: E402  (scripts/ is not a package)

DATASET_ID = 990
PAPER_SIZE = (128, 128, 32)
TINY_SIZE = (32, 32, 16)
CPU_REFERENCE = REPO / "docs" / "device" / "cpu_reference.json"
TRAINERS = ("nnUNetTrainerBudget", "nnUNetTrainerSynth", "nnUNetTrainerSynthPix2pix", "nnUNetTrainerSynthSPADE")
SYNTH_FRACTION = 0.5  # every synth trainer above mixes half of each batch
POOL_USES = 4  # NNSYNTH_POOL_USES default: each generated case serves at most this many samples per worker
RATIO_GOAL = 1.05
PACKAGES = ("torch", "numpy", "scipy", "nnunetv2", "batchgenerators", "batchgeneratorsv2",
            "dynamic_network_architectures", "acvl_utils", "blosc2", "SimpleITK", "nibabel", "nilearn",
            "connected-components-3d", "pandas", "scikit-learn", "nnunet-synth")


@dataclass(frozen=True)
class Sizes:
    """What one mode runs: the full check on the GPU machine, or the tiny dry run of the same steps."""

    subjects: int
    spacing: float | None
    plans: str  # trainer / experiment plans; the throughput patch always comes from nnUNetPlans
    shrink: tuple[str, ...]  # nnsynth shrink-plans arguments making `plans` (empty: nnU-Net's own)
    throughput_repeats: int
    generator_args: dict[str, tuple[str, ...]]  # kind -> nnsynth train-* arguments when it must be trained
    epochs: int
    iterations: int
    repeats: int
    n_proc_da: str
    paper: tuple[str, ...]  # nnsynth experiment overrides
    estimates: dict[str, float]  # seconds a step needs at least (deadline planning)
    run_timeout: float = 240.0  # one nnUNetv2_train of the overhead step; past it the run counts as hung


# the embedded pix2pix's size (its model card), so SPADE and pix2pix are timed at a comparable size
TRANSLATOR_SIZE = ("--filters", "16", "--max-filters", "128", "--crop", "48", "--disc-filters", "16,32,64,128")
FULL = Sizes(subjects=40, spacing=None, plans="nnUNetPlans", shrink=(), throughput_repeats=20,
             generator_args={"spade": ("--arch", "spade", *TRANSLATOR_SIZE, "--steps", "40"),
                             "pix2pix": ("--arch", "pix2pix", *TRANSLATOR_SIZE, "--steps", "40"),
                             "maskgan": ("--gen-filters", "64", "--steps", "40")},
             epochs=3, iterations=30, repeats=2, n_proc_da="12",
             paper=("--epochs", "2", "--iterations", "10", "--val-iterations", "2", "--real-cases", "10"),
             estimates={"dataset": 60, "throughput": 30, "generators": 30, "overhead": 120, "paper": 120})
TINY = Sizes(subjects=12, spacing=6.0, plans="nnsynthTiny",
             shrink=("--patch-size", "16", "16", "16", "--stages", "3", "--base-features", "4"),
             throughput_repeats=2,
             generator_args={"spade": ("--arch", "spade", "--filters", "4", "--max-filters", "8", "--levels", "2",
                                       "--crop", "16", "--disc-filters", "4,8", "--batch-size", "1", "--steps", "2"),
                             "pix2pix": ("--arch", "pix2pix", "--filters", "4", "--max-filters", "8", "--levels", "2",
                                         "--crop", "16", "--disc-filters", "4,8", "--batch-size", "1", "--steps", "2"),
                             "maskgan": ("--gen-filters", "8", "--steps", "2", "--batch-size", "2", "--n-critic", "1")},
             epochs=2, iterations=2, repeats=1, n_proc_da="1",
             paper=("--epochs", "1", "--iterations", "2", "--val-iterations", "1", "--real-cases", "2",
                    "--plans", "nnsynthTiny"),
             estimates={"dataset": 10, "throughput": 5, "generators": 10, "overhead": 20, "paper": 20},
             run_timeout=150.0)


class Deadline:
    """The check's time budget: a step that no longer fits is skipped and reported, not cut off."""

    def __init__(self, started_at: float, limit_s: float, margin_s: float = 15.0):
        self.end = started_at + limit_s - margin_s

    def left(self) -> float:
        return self.end - time.time()


def finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def command_env(work: Path, n_proc_da: str) -> dict[str, str]:
    """nnU-Net's folders under work, nnU-Net's worker count, and the trainers' shim."""
    from nnsynth_trainers.registration import trainer_path

    env = dict(os.environ)
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        (work / "nnunet" / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(work / "nnunet" / sub)
    env.update({"nnUNet_n_proc_DA": n_proc_da, "nnUNet_def_n_proc": n_proc_da, "nnUNet_compile": "f",
                "nnUNet_extTrainer": str(trainer_path())})
    return env


def run_command(label: str, command: list[str], env: dict[str, str], log: Path,
                timeout: float | None = None) -> float:
    """One console command (nnsynth / nnU-Net), output to log; seconds; a clear error with the log's end.

    Past ``timeout`` seconds the command and its children (its own process group) are killed.
    """
    from nnsynth_experiments.pipeline import console_script

    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"\n=== {label}\n$ {' '.join(command)}\n")
        out.flush()
        proc = subprocess.Popen([console_script(command[0]), *command[1:]], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=None if timeout is None else max(1.0, timeout))
        except subprocess.TimeoutExpired:
            overhead_bench.kill_group(proc)
            raise RuntimeError(f"{label}: `{' '.join(command)}` killed after {timeout:.0f} s (the check's deadline); "
                               f"end of {log}:\n" + log.read_text()[-2500:]) from None
        except BaseException:  # SIGTERM (see main) or Ctrl-C: the command's own session would outlive us
            overhead_bench.kill_group(proc)
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: `{' '.join(command)}` failed (exit {proc.returncode}); end of {log}:\n"
                           + log.read_text()[-2500:])
    return time.perf_counter() - start


# ---- 1. environment -----------------------------------------------------------------------------
def step_environment(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import nnunet_synth

    env: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable,
                           "host": platform.node(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                           "torch_threads": torch.get_num_threads(),
                           "load_average_1min": os.getloadavg()[0],
                           "packages": {p: _version(p) for p in PACKAGES},
                           "nnunet_synth_imported_from": str(Path(nnunet_synth.__file__).parent)}
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda, but torch.cuda.is_available() is False "
                               f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
        props = torch.cuda.get_device_properties(0)
        env.update({"gpu": torch.cuda.get_device_name(0), "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                    "gpu_multiprocessors": props.multi_processor_count})
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True)
        env["nvidia_smi"] = q.stdout.strip() if q.returncode == 0 else f"failed: {q.stderr.strip()[:200]}"
    if args.install_report and args.install_report.is_file():
        env["install"] = json.loads(args.install_report.read_text())
    return env


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


# ---- 2. dataset ---------------------------------------------------------------------------------
def step_dataset(args: argparse.Namespace, sizes: Sizes, env: dict[str, str]) -> dict[str, Any]:
    """The demo cohort, planned and preprocessed by nnU-Net here (reused when the same one is there)."""
    from nnunet_synth.nnunet_io.folders import require_dataset

    marker = args.work / "nnunet" / "dataset_made_by_device_check.json"
    wanted = {"dataset_id": args.dataset_id, "subjects": sizes.subjects, "spacing": sizes.spacing,
              "plans": sizes.plans, "shrink": list(sizes.shrink)}
    log = args.work / "logs" / "dataset.log"
    timings: dict[str, float] = {}
    reused = marker.is_file() and json.loads(marker.read_text()) == wanted
    if not reused:
        for sub in ("raw", "preprocessed", "results"):
            shutil.rmtree(args.work / "nnunet" / sub, ignore_errors=True)
            (args.work / "nnunet" / sub).mkdir(parents=True)
        n_proc = str(max(1, min(8, os.cpu_count() or 1)))
        cohort = ["nnsynth", "demo-cohort", "--dataset-id", str(args.dataset_id), "--subjects", str(sizes.subjects),
                  "-np", n_proc] + (["--spacing", str(sizes.spacing)] if sizes.spacing else [])
        timings["demo_cohort"] = run_command("demo cohort", cohort, env, log, args.deadline.left())
        planner_env = {**env, "nnUNet_n_proc_DA": str(max(1, int(env["nnUNet_n_proc_DA"])))}  # it refuses 0
        timings["plan_and_preprocess"] = run_command(
            "plan and preprocess", ["nnUNetv2_plan_and_preprocess", "-d", str(args.dataset_id), "-c", "3d_fullres",
                                    "-np", n_proc, "-npfp", n_proc], planner_env, log, args.deadline.left())
        if sizes.shrink:
            timings["shrink_plans"] = run_command(
                "shrink plans", ["nnsynth", "shrink-plans", "-d", str(args.dataset_id), "--plans-name", sizes.plans,
                                 *sizes.shrink], env, log, args.deadline.left())
        marker.write_text(json.dumps(wanted))
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[var] = env[var]
    pre_dir = require_dataset(args.dataset_id, "nnUNet_preprocessed")
    default = json.loads((pre_dir / "nnUNetPlans.json").read_text())["configurations"]["3d_fullres"]
    trained = json.loads((pre_dir / f"{sizes.plans}.json").read_text())["configurations"]["3d_fullres"]
    return {"name": pre_dir.name, "reused": reused, "seconds": timings, **wanted,
            "default_patch_size": default["patch_size"], "default_batch_size": default["batch_size"],
            "median_shape": default["median_image_size_in_voxels"], "spacing_mm": default["spacing"],
            "train_plans": sizes.plans, "train_patch_size": trained["patch_size"],
            "train_batch_size": trained["batch_size"],
            "train_stages": trained["architecture"]["arch_kwargs"]["n_stages"],
            "training_cases": len(list((pre_dir.parent.parent / "raw" / pre_dir.name / "labelsTr").glob("*.nii.gz"))),
            "test_cases": len(list((pre_dir.parent.parent / "raw" / pre_dir.name / "labelsTs").glob("*.nii.gz")))}


# ---- 3. throughput ------------------------------------------------------------------------------
def _timed(call: Callable[[], Any], repeats: int, cuda: bool, warmup: int) -> list[float]:
    import torch

    for _ in range(warmup):  # allocator, cuDNN / oneDNN kernel selection
        call()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def step_throughput(args: argparse.Namespace, sizes: Sizes, dataset: dict[str, Any]) -> dict[str, Any]:
    """Per-case generation time of every renderer and the mask GAN at the paper's and the patch size."""
    import numpy as np
    import torch
    from bench_maskgan import levels_for, untrained_sampler
    from bench_translators import centre_fit, untrained

    from nnsynth_gan.translator.data import anatomy_classes, fit_space, load_cases
    from nnunet_synth.nnunet_io.folds import fold_case_ids
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.renderers import GaussianMixtureRenderer
    from nnunet_synth.renderers.translator import TRANSLATOR_KINDS

    torch.backends.cudnn.benchmark = True  # what a long generation run would use
    pre = open_preprocessed(args.dataset_id)
    train_ids, _ = fold_case_ids(pre, args.fold)
    cases = load_cases(pre, train_ids[: min(len(train_ids), 8)])
    source = max(cases, key=lambda c: c.lesion.size)
    space = fit_space(cases, anatomy_classes(pre))
    gmm = GaussianMixtureRenderer.fit([(c.image, c.labelmap) for c in cases])
    patch = tuple(int(s) for s in dataset["default_patch_size"])
    shapes = [TINY_SIZE if args.tiny else PAPER_SIZE, patch]
    cuda = args.device == "cuda"
    warmup = 3 if cuda else 1
    repeats = sizes.throughput_repeats if cuda else min(sizes.throughput_repeats, 3)  # CPU: seconds per case
    rows = []
    translators = {kind: untrained(kind, space, args.device) for kind in TRANSLATOR_KINDS}
    for shape in shapes:
        labelmap = centre_fit(source.labelmap, shape)
        rng = np.random.default_rng(0)
        gens: list[tuple[str, str, Callable[[], Any], int | None, str]] = [
            ("gaussian_mixture", "cpu", lambda lm=labelmap, g=rng: gmm.render(lm, g), None,
             "fitted on 8 training cases")]
        for kind, renderer in translators.items():
            params = sum(t.numel() for t in renderer.generator.parameters())
            gens.append((kind, args.device, lambda r=renderer, lm=labelmap, g=rng: r.render(lm, g), params,
                         "random weights, default config"))
        paper_box = shape == PAPER_SIZE
        sampler = untrained_sampler(shape, 5 if paper_box else levels_for(shape), 7, args.device)
        gens.append(("maskgan", args.device, lambda s=sampler: s.sample(1, seed=1, batch_size=1),
                     sum(t.numel() for t in sampler.generator.parameters()),
                     "random weights, " + ("the paper's 5 levels" if paper_box else f"{levels_for(shape)} levels")
                     + ", final kernel 7"))
        for name, device, call, params, weights in gens:
            times = _timed(call, repeats, cuda and device == "cuda", warmup)
            med = statistics.median(times)
            rows.append({"generator": name, "size": list(shape), "device": device, "ms_per_case": med * 1e3,
                         "cases_per_s": 1.0 / med, "best_ms": min(times) * 1e3, "repeats": len(times),
                         "params_m": None if params is None else params / 1e6, "weights": weights})
            print(f"  {'x'.join(map(str, shape)):>10} {name:<17} {device:<4} {med * 1e3:9.2f} ms/case "
                  f"{1 / med:9.2f} cases/s", flush=True)
    return {"rows": rows, "torch_threads": torch.get_num_threads(), "label_map": f"{pre.name}: {source.case_id}, "
            "centre-cropped or padded to each size", "timing": "median of repeats after warm-up; CUDA timed "
            "between torch.cuda.synchronize() calls; the Gaussian mixture is numpy and runs on the CPU"}


def cpu_reference_rows(path: Path) -> tuple[dict[tuple[str, tuple[int, ...]], dict], dict[str, Any] | None]:
    if not path.is_file():
        return {}, None
    ref = json.loads(path.read_text())
    rows = {(r["generator"], tuple(r["size"])): r for r in ref.get("throughput", {}).get("rows", [])}
    return rows, ref


# ---- 4. generators ------------------------------------------------------------------------------
def step_generators(args: argparse.Namespace, sizes: Sizes, env: dict[str, str]) -> dict[str, Any]:
    """Each learned generator's checkpoint for the fold: the dataset's, the embedded one, or trained now."""
    from nnunet_synth.errors import NNSynthError
    from nnunet_synth.generators.lookup import checkpoint_for_fold, checkpoint_path, generator_dir
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed

    shutil.rmtree(generator_dir(args.dataset_id), ignore_errors=True)  # every check trains its own, timed
    pre = open_preprocessed(args.dataset_id, sizes.plans)
    log = args.work / "logs" / "generators.log"
    out = {}
    for kind in ("maskgan", "pix2pix", "spade"):
        try:
            path, _ = checkpoint_for_fold(kind, args.dataset_id, args.fold, pre.fingerprint, pre.dataset_json,
                                          log=lambda _msg: None)
            out[kind] = {"source": "embedded default (demo cohort)" if "defaults" in str(path) else "dataset",
                         "path": str(path)}
            continue
        except NNSynthError:
            pass
        command = (["nnsynth", "train-maskgan"] if kind == "maskgan" else ["nnsynth", "train-translator"])
        command += [*sizes.generator_args[kind], "-d", str(args.dataset_id), "--fold", str(args.fold),
                    "--plans", sizes.plans, "--device", args.device, "--no-progress"]
        seconds = run_command(f"train {kind}", command, env, log, args.deadline.left())
        path = checkpoint_path(args.dataset_id, kind, args.fold)
        if not path.is_file():
            raise RuntimeError(f"train {kind} wrote no {path} (log: {log})")
        out[kind] = {"source": "trained by this check (random-init, brief: for timing, not quality)",
                     "path": str(path), "train_seconds": seconds, "command": " ".join(command),
                     "bytes": path.stat().st_size}
    return out


# ---- 5. overhead --------------------------------------------------------------------------------
class ProcessSampler:
    """CPU use of a training process and of its children (/proc), and the GPU (nvidia-smi), in the background."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.tick = os.sysconf("SC_CLK_TCK")

    def start(self, pid: int) -> None:
        self.pid, self.cpu, self.gpu = pid, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_cpu, daemon=True)
        self._thread.start()
        smi = shutil.which("nvidia-smi")
        self._smi = None if smi is None else subprocess.Popen(
            [smi, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
             f"--loop-ms={int(self.interval * 1000)}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self._smi is not None:
            self._gpu_thread = threading.Thread(target=self._read_gpu, daemon=True)
            self._gpu_thread.start()

    def _read_gpu(self) -> None:
        for line in self._smi.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                self.gpu.append((time.time(), float(parts[0]), float(parts[1])))
            except (ValueError, IndexError):
                continue

    def _stat(self) -> dict[int, tuple[int, float]]:
        """pid -> (parent pid, CPU seconds) of every process (fields 4, 14 and 15 of /proc/PID/stat)."""
        out = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self.tick)
            except (OSError, IndexError, ValueError):
                continue
        return out

    def _sample_cpu(self) -> None:
        last: dict[int, float] = {}
        last_t = None
        while not self._stop.is_set():
            now, procs = time.time(), self._stat()
            family = {self.pid}
            grew = True
            while grew:  # the main process's descendants: nnU-Net's augmentation workers
                kids = {p for p, (ppid, _) in procs.items() if ppid in family and p not in family}
                family |= kids
                grew = bool(kids)
            cpu = {p: procs[p][1] for p in family if p in procs}
            if last_t is not None and self.pid in cpu:
                span = now - last_t
                main = (cpu[self.pid] - last.get(self.pid, cpu[self.pid])) / span
                workers = [(c - last[p]) / span for p, c in cpu.items() if p != self.pid and p in last]
                self.cpu.append((now, main, sum(workers), len(workers)))
            last, last_t = cpu, now
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._smi is not None:
            self._smi.terminate()
            self._smi.wait(timeout=5)
        return {"cpu": self.cpu, "gpu": self.gpu}


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+): (Epoch (\d+)|Epoch time: [0-9.]+ s)\s*$", re.M)


def timed_window(log: str) -> tuple[float, float] | None:
    """Wall-clock span of the epochs that count (from the second epoch's start to the last epoch's end)."""
    starts, ends = {}, []
    for stamp, _what, epoch in LOG_TIME.findall(log):
        t = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if epoch:
            starts[int(epoch)] = t
        else:
            ends.append(t)
    if not starts or not ends:
        return None
    first = min(e for e in starts if e >= 1) if any(e >= 1 for e in starts) else min(starts)
    return starts[first], ends[-1]


def summarise_samples(sampled: dict[str, Any], window: tuple[float, float] | None) -> dict[str, Any]:
    def inside(rows: list[tuple]) -> list[tuple]:
        if window is None:
            return rows
        kept = [r for r in rows if window[0] <= r[0] <= window[1]]
        return kept or rows

    cpu, gpu = inside(sampled.get("cpu", [])), inside(sampled.get("gpu", []))
    out: dict[str, Any] = {"window": "timed epochs" if window else "whole run", "cpu_samples": len(cpu),
                           "gpu_samples": len(gpu)}
    if cpu:
        n = max(r[3] for r in cpu)
        out.update({"main_process_cpu": statistics.mean(r[1] for r in cpu),
                    "workers_cpu_total": statistics.mean(r[2] for r in cpu), "workers": n,
                    "workers_cpu_each": statistics.mean(r[2] for r in cpu) / n if n else None})
    if gpu:
        out.update({"gpu_util_mean": statistics.mean(r[1] for r in gpu), "gpu_util_max": max(r[1] for r in gpu),
                    "gpu_memory_max_mib": max(r[2] for r in gpu)})
    return out


def bottleneck(stats: dict[str, Any], coverage: float | None, cuda: bool) -> str:
    """Which side limits the iteration rate, from the sampled utilisation (a heuristic, with its numbers)."""
    main, each = stats.get("main_process_cpu"), stats.get("workers_cpu_each")
    gpu = stats.get("gpu_util_mean")
    if coverage is not None and coverage < 1.0:
        return (f"main process: its synthetic feed made {coverage:.2f}x the fresh cases the batches asked for, so "
                "workers served cases more than NNSYNTH_POOL_USES times")
    if not cuda:
        return f"main process: training itself runs in it on the CPU ({main:.2f} cores busy)" if main is not None \
            else "main process: training itself runs in it on the CPU"
    if main is not None and main >= 0.9:
        return f"main process (CPU {main:.2f} of a core: training loop + feed producer share the GIL)"
    if each is not None and each >= 0.85 and (gpu is None or gpu < 80):
        return f"augmentation workers (each {each:.2f} of a core busy" + (f", GPU {gpu:.0f}%" if gpu is not None
                                                                        else "") + ")"
    if gpu is not None and gpu >= 80:
        return f"GPU ({gpu:.0f}% utilised)"
    return "none saturated (main {}, workers each {}, GPU {})".format(
        *(f"{v:.2f}" if v is not None else "n/a" for v in (main, each)), f"{gpu:.0f}%" if gpu is not None else "n/a")


def step_overhead(args: argparse.Namespace, sizes: Sizes, dataset: dict[str, Any], deadline: Deadline,
                  reserve: float) -> dict[str, Any]:
    from nnunet_synth.generators.lookup import generator_dir

    gens = generator_dir(args.dataset_id)
    runs_log = args.work / "logs" / "overhead"
    runs_log.mkdir(parents=True, exist_ok=True)
    repeat_started = [time.time()]

    errors: list[str] = []

    def run_one(trainer: str, scratch: Path) -> dict[str, Any]:
        try:  # a failed or hung run is reported; the other trainers' figures still come back
            res = overhead_bench.train_and_time(
                trainer, dataset_id=args.dataset_id, plans=sizes.plans, fold=str(args.fold), device=args.device,
                epochs=sizes.epochs, iterations=sizes.iterations, results=scratch, n_proc_da=sizes.n_proc_da,
                generators=gens if gens.is_dir() else None, dataset_name=dataset["name"], watch=ProcessSampler(),
                timeout=min(sizes.run_timeout, max(1.0, deadline.left())))
        except RuntimeError as exc:
            errors.append(str(exc)[:1500])
            print(f"  {trainer}: {str(exc).splitlines()[0]}", flush=True)
            return {"trainer": trainer, "error": str(exc)[:1500]}
        log = res.pop("log")
        (runs_log / f"{trainer}_repeat{len(list(runs_log.glob(trainer + '_*')))}.txt").write_text(log)
        res["utilisation"] = summarise_samples(res.pop("sampled"), timed_window(log))
        return res

    def keep_going(r: int) -> bool:
        per_repeat = (time.time() - repeat_started[0]) / r
        return deadline.left() - reserve >= per_repeat * 1.1

    def say(r: int, res: dict[str, Any]) -> None:
        if "error" in res:
            return
        u = res["utilisation"]
        print(f"  repeat {r + 1}: {res['trainer']:<26} {res['s_per_iteration']:.4f} s/iteration, "
              f"GPU {u.get('gpu_util_mean', float('nan')):.0f}%, main CPU {u.get('main_process_cpu', float('nan')):.2f}"
              f", feed {res['feed_generated']}", flush=True)

    runs = overhead_bench.alternate(TRAINERS, sizes.repeats, run_one, keep_going, say)
    done = [x for x in runs if "error" not in x]
    baseline = [x["s_per_iteration"] for x in done if x["trainer"] == TRAINERS[0]]
    if not baseline:
        raise RuntimeError("the baseline nnUNetTrainerBudget did not finish: " + "; ".join(errors))
    base = statistics.mean(baseline)
    batch = int(dataset["train_batch_size"])
    table = []
    for trainer in TRAINERS:
        mine = [x for x in done if x["trainer"] == trainer]
        if not mine:
            table.append({"trainer": trainer, "runs": 0, "error": next(x["error"] for x in runs
                                                                         if x["trainer"] == trainer)})
            continue
        s_it = statistics.mean(x["s_per_iteration"] for x in mine)
        util = {k: statistics.mean(x["utilisation"][k] for x in mine if x["utilisation"].get(k) is not None)
                for k in ("main_process_cpu", "workers_cpu_each", "gpu_util_mean", "gpu_memory_max_mib")
                if any(x["utilisation"].get(k) is not None for x in mine)}
        row = {"trainer": trainer, "runs": len(mine), "s_per_iteration": s_it, "ratio": s_it / base,
               "s_per_iteration_each": [x["s_per_iteration"] for x in mine], **util}
        if trainer != TRAINERS[0]:
            demand = sizes.epochs * sizes.iterations * batch * SYNTH_FRACTION  # synthetic samples drawn
            produced = [x["feed_generated"] for x in mine if x["feed_generated"] is not None]
            row["feed_generated"] = statistics.mean(produced) if produced else None
            row["synthetic_samples"] = demand
            coverage = (row["feed_generated"] * POOL_USES / demand) if produced else None
            row["feed_coverage"] = coverage
            row["goal_met"] = row["ratio"] <= RATIO_GOAL
            row["bottleneck"] = bottleneck(util, coverage, args.device == "cuda")
        table.append(row)
        print(f"  {trainer:<26} {s_it:.4f} s/iteration, ratio {s_it / base:.3f}", flush=True)
    return {"rows": table, "runs": runs, "epochs": sizes.epochs, "iterations": sizes.iterations,
            "repeats_done": 1 + max(x.get("repeat", 0) for x in runs), "repeats_planned": sizes.repeats,
            "nnUNet_n_proc_DA": sizes.n_proc_da, "plans": sizes.plans, "patch_size": dataset["train_patch_size"],
            "batch_size": batch, "goal": f"ratio <= {RATIO_GOAL}", "errors": errors,
            "goal_met": not errors and all(r.get("goal_met", True) for r in table)}


# ---- 6. paper profile ---------------------------------------------------------------------------
def step_paper(args: argparse.Namespace, sizes: Sizes, env: dict[str, str]) -> dict[str, Any]:
    out_dir = args.work / "experiment_paper"
    shutil.rmtree(out_dir, ignore_errors=True)
    command = ["nnsynth", "experiment", "-d", str(args.dataset_id), "--profile", "paper", *sizes.paper,
               "--seeds", "1", "--arms", "real", "synth", "--device", args.device, "-o", str(out_dir)]
    seconds = run_command("paper profile", command, env, args.work / "logs" / "paper.log", args.deadline.left())
    results = json.loads((out_dir / "results.json").read_text())
    runs = [{k: r.get(k) for k in ("name", "trainer", "fold", "dice", "dice_nnunet", "lesion_f1", "train_seconds",
                                   "timings_seconds")} for r in results["runs"]]
    return {"command": " ".join(command), "seconds": seconds, "runs": runs, "table": results["table_markdown"],
            "note": "a budget this small trains nothing useful: the Dice figures only show that predict and "
                    "evaluate ran on the trained models"}


# ---- report -------------------------------------------------------------------------------------
def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return fmt.format(x) if finite(x) is not None else "n/a"


def markdown(report: dict[str, Any]) -> str:
    env = report.get("environment", {})
    lines = [f"# Device check ({report['mode']})", "",
             f"Started {report['started']}; total wall time {_f(report.get('wall_seconds'), '{:.0f}')} s; "
             f"GPU figures measured: {'yes' if report['gpu_figures_measured'] else 'no'}.", ""]
    if env:
        lines += [f"- Python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, cuDNN "
                  f"{env.get('cudnn')}), {env.get('cpu_count')} CPU cores",
                  f"- GPU: {env.get('gpu', 'none')}" + (f" ({env['nvidia_smi']})" if env.get("nvidia_smi") else ""),
                  f"- nnunetv2 {env['packages'].get('nnunetv2')}, nnunet-synth {env['packages'].get('nnunet-synth')}",
                  ""]
    lines += ["## Steps", "", "| step | status | wall s |", "|---|---|---|"]
    if env.get("install"):
        done = ", ".join(env["install"]["installed"]) or "nothing missing"
        lines.append(f"| install (device_install.py) | ok: {done} | {_f(env['install'].get('seconds'), '{:.1f}')} |")
    for name, st in report["steps"].items():
        lines.append(f"| {name} | {st['status']}{': ' + st['reason'] if st.get('reason') else ''} | "
                     f"{_f(st.get('seconds'), '{:.1f}')} |")
    ds = report.get("dataset")
    if ds:
        lines += ["", f"Dataset: {ds['name']} ({ds['training_cases']} training, {ds['test_cases']} test cases, "
                  f"spacing {ds['spacing_mm']} mm); nnUNetPlans 3d_fullres patch {ds['default_patch_size']}, "
                  f"batch {ds['default_batch_size']}; trained with {ds['train_plans']} (patch "
                  f"{ds['train_patch_size']}, {ds['train_stages']} stages)."]
    tp = report.get("throughput")
    if tp:
        ref_rows, ref = cpu_reference_rows(Path(report["cpu_reference_file"]))
        ref_note = (f"CPU reference: {ref['environment'].get('host')}, {ref['throughput'].get('torch_threads')} "
                    f"torch threads, measured {ref.get('measured')}" if ref else "no CPU reference file")
        lines += ["", "## 1. Generation throughput", "", tp["timing"] + "; " + ref_note + ".", "",
                  "| generator | size | device | ms/case | cases/s | CPU reference ms/case | CPU cases/s | speed-up |"
                  " weights |", "|---|---|---|---|---|---|---|---|---|"]
        for r in tp["rows"]:
            c = ref_rows.get((r["generator"], tuple(r["size"])))
            cms = c["ms_per_case"] if c else None
            lines.append(f"| {r['generator']} | {'x'.join(map(str, r['size']))} | {r['device']} | "
                         f"{_f(r['ms_per_case'], '{:.2f}')} | {_f(r['cases_per_s'], '{:.1f}')} | "
                         f"{_f(cms, '{:.1f}')} | {_f(c['cases_per_s'] if c else None, '{:.2f}')} | "
                         f"{_f(cms / r['ms_per_case'] if cms else None, '{:.1f}x')} | {r['weights']} |")
    gens = report.get("generators")
    if gens:
        lines += ["", "## Generators", ""] + [f"- {k}: {v['source']}" + (
            f", trained in {v['train_seconds']:.0f} s (`{v['command']}`)" if "train_seconds" in v else "")
            for k, v in gens.items()]
    ov = report.get("overhead")
    if ov:
        lines += ["", "## 2. Overhead of the synthetic trainers", "",
                  f"{ov['epochs']} epochs x {ov['iterations']} iterations per run (first epoch dropped), plans "
                  f"{ov['plans']} (patch {ov['patch_size']}, batch {ov['batch_size']}), nnUNet_n_proc_DA="
                  f"{ov['nnUNet_n_proc_DA']}, {ov['repeats_done']} of {ov['repeats_planned']} alternating repeats. "
                  f"Goal {ov['goal']}: {'met' if ov['goal_met'] else 'NOT met'}.", "",
                  "| trainer | s/iteration | ratio | GPU util % | GPU MiB | main CPU (cores) | worker CPU each | "
                  "feed cases | feed coverage | bottleneck |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in ov["rows"]:
            if "error" in r:
                lines.append(f"| {r['trainer']} | failed: {r['error'].splitlines()[0]} |" + " |" * 8)
                continue
            lines.append(f"| {r['trainer']} | {_f(r['s_per_iteration'], '{:.4f}')} | {_f(r['ratio'])} | "
                         f"{_f(r.get('gpu_util_mean'), '{:.0f}')} | {_f(r.get('gpu_memory_max_mib'), '{:.0f}')} | "
                         f"{_f(r.get('main_process_cpu'), '{:.2f}')} | {_f(r.get('workers_cpu_each'), '{:.2f}')} | "
                         f"{_f(r.get('feed_generated'), '{:.0f}')} | {_f(r.get('feed_coverage'), '{:.2f}')} | "
                         f"{r.get('bottleneck', 'baseline')} |")
        lines += ["", "feed coverage = cases the main process generated x NNSYNTH_POOL_USES / synthetic samples "
                  "drawn (< 1: the generator fell behind the workers)."]
    pp = report.get("paper")
    if pp:
        lines += ["", "## 3. Paper profile, short", "", f"`{pp['command']}` ({pp['seconds']:.0f} s); {pp['note']}.",
                  "", pp["table"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    from nnunet_synth.nnunet_io.atomic import to_plain

    plain = to_plain(report, nan_to_none=True)
    (out / "device_check.json").write_text(json.dumps(plain, indent=2) + "\n")
    (out / "device_check.md").write_text(markdown(plain))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny cohort, shrunk plans, 2 x 2 iterations (CPU dry run)")
    p.add_argument("--dataset-id", type=int, default=DATASET_ID)
    p.add_argument("--fold", default="0")
    p.add_argument("--work", type=Path, default=Path("/tmp/nnsynth_device"), help="nnU-Net folders, logs")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "device_check_out"))
    p.add_argument("--steps", nargs="+", default=["dataset", "throughput", "generators", "overhead", "paper"],
                   choices=("dataset", "throughput", "generators", "overhead", "paper"))
    p.add_argument("--cpu-reference", type=Path, default=CPU_REFERENCE)
    p.add_argument("--write-cpu-reference", type=Path, default=None,
                   help="run environment, dataset and throughput on the CPU and save them as the reference file")
    p.add_argument("--time-limit", type=float, default=470.0, help="seconds for the whole check")
    p.add_argument("--started-at", type=float, default=None, help="epoch seconds the check began (the wrapper's)")
    p.add_argument("--install-report", type=Path, default=None)
    args = p.parse_args(argv)
    # device_check.sh's `timeout` sends SIGTERM to its process group only; the commands started here run in
    # sessions of their own, so SIGTERM must unwind (SystemExit) to kill them instead of leaving them running
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    if args.write_cpu_reference:
        args.device, args.steps = "cpu", ["dataset", "throughput"]
    sizes = TINY if args.tiny else FULL
    deadline = args.deadline = Deadline(args.started_at or time.time(), args.time_limit)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.work / "logs", ignore_errors=True)  # this run's logs only
    (args.work / "logs").mkdir(parents=True)
    t_start = time.time()
    report: dict[str, Any] = {
        "schema": 1, "mode": f"{args.device}{' tiny' if args.tiny else ''}", "device": args.device, "tiny": args.tiny,
        "started": dt.datetime.now().isoformat(timespec="seconds"), "gpu_figures_measured": False,
        "cpu_reference_file": str(args.cpu_reference), "steps": {}}
    env = command_env(args.work, sizes.n_proc_da)
    failed = False

    def step(name: str, fn: Callable[[], Any], needs: float = 0.0) -> None:
        nonlocal failed
        if name != "environment" and name not in args.steps:
            return
        if deadline.left() < needs:
            report["steps"][name] = {"status": "skipped", "reason": f"{deadline.left():.0f} s left, needs ~{needs:.0f}"}
            write_report(report, args.out)
            return
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            report[name] = fn()
            report["steps"][name] = {"status": "ok", "seconds": time.perf_counter() - t0}
            if report[name].get("errors"):
                failed = True
                report["steps"][name].update(status="failed", reason="; ".join(report[name]["errors"])[:1500])
        except Exception as exc:  # one failed step must not hide the others' figures
            failed = True
            traceback.print_exc()
            report["steps"][name] = {"status": "failed", "seconds": time.perf_counter() - t0,
                                     "reason": f"{type(exc).__name__}: {str(exc)[:1500]}"}
        report["wall_seconds"] = time.time() - (args.started_at or t_start)
        write_report(report, args.out)

    est = sizes.estimates
    step("environment", lambda: step_environment(args))
    step("dataset", lambda: step_dataset(args, sizes, env), est["dataset"])
    if "dataset" not in report:
        print("device_check: no dataset, nothing else can run", file=sys.stderr)
        return 1
    step("throughput", lambda: step_throughput(args, sizes, report["dataset"]), est["throughput"])
    if args.write_cpu_reference:
        ref = {"measured": report["started"], "command": "python scripts/device_check.py --device cpu "
               f"--write-cpu-reference {args.write_cpu_reference}", "environment": report["environment"],
               "dataset": report["dataset"], "throughput": report.get("throughput")}
        from nnunet_synth.nnunet_io.atomic import to_plain

        args.write_cpu_reference.parent.mkdir(parents=True, exist_ok=True)
        args.write_cpu_reference.write_text(json.dumps(to_plain(ref, nan_to_none=True), indent=2) + "\n")
        return 1 if failed or "throughput" not in report else 0
    step("generators", lambda: step_generators(args, sizes, env), est["generators"])
    paper_reserve = est["paper"] if "paper" in args.steps else 0.0
    step("overhead", lambda: step_overhead(args, sizes, report["dataset"], deadline, paper_reserve), est["overhead"])
    step("paper", lambda: step_paper(args, sizes, env), est["paper"])
    report["gpu_figures_measured"] = args.device == "cuda" and report["steps"].get("throughput", {}).get(
        "status") == "ok"
    report["wall_seconds"] = time.time() - (args.started_at or t_start)
    logs = args.out / "device_check_logs.tar.gz"
    with tarfile.open(logs, "w:gz") as tar:
        tar.add(args.work / "logs", arcname="logs")
    write_report(report, args.out)
    print(f"device_check: {'FAILED steps, see ' if failed else ''}{args.out / 'device_check.md'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
