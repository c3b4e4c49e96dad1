"""`nnsynth demo`: the whole workflow on the offline demo cohort, real-only vs synthetic arm.

demo cohort -> nnUNetv2_plan_and_preprocess -> `nnsynth experiment` with the cpu-small profile at a
reduced grid (10 real training cases, arms real and synth, 1 seed): shrink-plans, the subsample as an
extra fold, nnUNetv2_train with nnUNetTrainerBudget (baseline) and nnUNetTrainerSynth on the same
plans and budget, nnUNetv2_predict on the held-out test subjects, nnUNetv2_evaluate_folder and
`nnsynth evaluate`. Every step is the real console command. OUTPUT/report holds the table, the plot,
a mosaic of synthetic cases next to real ones and the per-case stroke metrics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from nnsynth_experiments.design import ARMS, profile_with
from nnsynth_experiments.pipeline import Pipeline, nnunet_environment
from nnsynth_experiments.runner import ExperimentConfig, run_experiment
from nnunet_synth import arguments as arg
from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic
from nnunet_synth.nnunet_io.folders import env_dir, find_dataset, require_dataset
from nnunet_synth.synthesis.mosaic import synthesis_mosaic

PLANS_NAME = "nnsynthCPU"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="end-to-end demo on the offline demo cohort: the cpu-small experiment at a reduced grid",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=Path("demo_output"),
                   help="folder for the nnU-Net folders, logs and the report (default: ./demo_output)")
    p.add_argument("--dataset-id", type=arg.DATASET_ID, default=990)
    p.add_argument("--subjects", type=arg.integer(2, 10000), default=40,
                   help="demo cohort size (a quarter is held out as test)")
    p.add_argument("--spacing", type=arg.number(0.5, 10), default=3.0, help="demo cohort voxel size in mm (default 3)")
    p.add_argument("--real-cases", nargs="+", default=["10"], help="real training cases per run (default 10)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["real", "synth"])
    p.add_argument("--seeds", type=arg.POSITIVE, default=1)
    p.add_argument("-j", "--jobs", type=arg.integer(1, 64), default=2, help="runs trained side by side (default 2)")
    g = p.add_argument_group("cpu-small profile overrides")
    for name in ("epochs", "iterations", "val-iterations", "patch", "stages", "base-features"):
        g.add_argument(f"--{name}", type=arg.POSITIVE, default=None)
    g.add_argument("--final-validation", action="store_true", default=None,
                   help="also run nnU-Net's final validation of each fold (slow on a CPU; the test set is scored)")
    p.add_argument("--mosaic-cases", type=arg.integer(1, 32), default=4, help="columns of the synthetic-vs-real mosaic")
    p.add_argument("--seed", type=arg.NON_NEGATIVE, default=0, help="demo cohort seed")
    p.add_argument("--fresh", action="store_true", help="delete OUTPUT first instead of reusing finished steps")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    out: Path = args.output.resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    env = nnunet_environment(out)
    pipe = Pipeline(env=env, log_file=out / "demo.log")
    raw = find_dataset(args.dataset_id, "nnUNet_raw", env)
    if raw is None:
        pipe.run("demo cohort", ["nnsynth", "demo-cohort", "--dataset-id", args.dataset_id, "--subjects",
                                 args.subjects, "--seed", args.seed, "--spacing", args.spacing, "-np", 2])
        raw = require_dataset(args.dataset_id, "nnUNet_raw", env)
    pre = env_dir("nnUNet_preprocessed", env) / raw.name
    if not (pre / "nnUNetPlans.json").is_file() or not (pre / "nnUNetPlans_3d_fullres").is_dir():
        pipe.run("plan and preprocess", ["nnUNetv2_plan_and_preprocess", "-d", args.dataset_id, "-c", "3d_fullres",
                                         "-np", 2, "--verify_dataset_integrity"], {"nnUNet_n_proc_DA": "1"})
    overrides = {k: getattr(args, k) for k in ("epochs", "iterations", "val_iterations", "patch", "stages",
                                               "base_features", "final_validation")}
    cfg = ExperimentConfig(dataset_id=args.dataset_id, sizes=list(args.real_cases), arms=list(args.arms),
                           seeds=args.seeds, profile=profile_with("cpu-small", plans=PLANS_NAME, **overrides),
                           output=out / "experiment", jobs=args.jobs, env=env)
    summary = run_experiment(cfg)
    exp = Path(summary["output"])
    for name in ("results.md", "results.csv", "runs.csv", "dice_vs_real_cases.png"):
        shutil.copy2(exp / name, report_dir / name)
    stroke_files = {}
    for result in summary["runs"]:
        pred = exp / "runs" / result["name"] / "predictions"
        for suffix in ("json", "csv"):
            target = report_dir / f"stroke_metrics_{result['name']}.{suffix}"
            shutil.copy2(pred / f"stroke_metrics.{suffix}", target)
        stroke_files[result["name"]] = str(report_dir / f"stroke_metrics_{result['name']}.json")
    first = summary["runs"][0]
    synth_trainer = next((r["trainer"] for r in summary["runs"] if r["arm"] == "synth"), None)
    notes = {("real", "gmm"): f"the demo's synth arm ({synth_trainer})" if synth_trainer == "nnUNetTrainerSynth"
             else "nnUNetTrainerSynth",
             ("maskgan", "pix2pix"): "nnUNetTrainerSynthPix2pix with the embedded demo generators; not trained "
                                     "by this demo"}
    mosaic_start = time.perf_counter()
    with environment(env):
        mosaic = synthesis_mosaic(args.dataset_id, cfg.profile.plans, first["fold"],
                                  report_dir / "synthetic_vs_real.png", n=args.mosaic_cases,
                                  engines=(("real", "gmm"), ("maskgan", "pix2pix")), notes=notes)
    timings = {k: round(v, 1) for k, v in pipe.timings}
    timings["experiment (train, predict, evaluate every run)"] = summary["seconds"]
    timings["mosaic"] = round(time.perf_counter() - mosaic_start, 1)
    total = time.perf_counter() - start
    report = {"verdict": summary["verdict"], "paired": summary["paired"], "results": summary["runs"],
              "table": summary["rows"], "experiment_folder": str(exp),
              "mosaic": mosaic, "stroke_metrics": stroke_files, "profile": asdict(cfg.profile),
              "cohort": {"subjects": args.subjects, "spacing_mm": args.spacing, "seed": args.seed},
              "timings_seconds": timings, "run_timings_seconds": {r["name"]: r["timings_seconds"]
                                                                  for r in summary["runs"]},
              "total_seconds": round(total, 1)}
    write_json_atomic(report_dir / "demo_results.json", report)
    skipped = "".join(f"\n- not shown: {k}: {v}" for k, v in mosaic["skipped"].items())
    row_list = ", ".join(f"{r} = {mosaic['row_notes'][r]}" if r in mosaic["row_notes"] else r for r in mosaic["rows"])
    timing_lines = "".join(f"\n| {k} | {v:.0f} |" for k, v in timings.items())
    write_text_atomic(report_dir / "demo_results.md",
        f"# nnsynth demo\n\n**{summary['verdict']}**\n\n"
        f"The `cpu-small` experiment at a reduced grid on the demo cohort ({args.subjects} "
        f"subjects at {args.spacing:g} mm, {args.seeds} seed(s)); every command is in `{out / 'demo.log'}` and "
        f"`{exp / 'runs'}/*/run.log`. On this budget nnU-Net's training randomness alone has moved the test "
        "Dice of one subsample by about 0.15 between two trainings, so a single run per arm shows what runs, "
        "not whether synthetic data helps; `--seeds N` gives the paired confidence interval.\n\n"
        f"## Paired difference to the real-only arm\n\n{summary['paired_markdown']}\n\n"
        f"## Per arm\n\n{summary['table_markdown']}\n\n"
        "![Dice vs real cases](dice_vs_real_cases.png)\n\n"
        f"## Synthetic cases next to real ones\n\nFold {first['fold']} ({first['n_real']} real training cases); "
        "axial slices (last axis of nnU-Net's preprocessed grid) through each case's largest lesion area, lesion "
        f"outlined in red; rows: {row_list}.{skipped}\n\n![mosaic](synthetic_vs_real.png)\n\n"
        f"Per-case stroke metrics: `stroke_metrics_<run>.csv`.\n\n## Timings\n\n| step | seconds |\n|---|---|"
        f"{timing_lines}\n\nTotal wall time: {total / 60:.1f} min\n")
    print(f"\n{summary['verdict']}\n\n{summary['paired_markdown']}\n\n{summary['table_markdown']}\n\n"
          f"demo finished in {total / 60:.1f} min; report: {report_dir}")
    return 0


@contextmanager
def environment(env: dict[str, str]):
    """Run in-process code (the mosaic) against the demo's private nnU-Net folders."""
    saved = {k: os.environ.get(k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    os.environ.update({k: env[k] for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
