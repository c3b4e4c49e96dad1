"""`nnsynth demo`: the whole workflow on the offline demo cohort, real-only vs synthetic arm.

demo cohort -> nnUNetv2_plan_and_preprocess -> shrink-plans -> a data-scarce split (few real
training cases) -> nnUNetv2_train with nnUNetTrainerBudget (baseline) and nnUNetTrainerSynth on the
same plans and budget -> nnUNetv2_predict on the held-out test subjects -> nnUNetv2_evaluate_folder.
Every step is the real console command; the report lands in OUTPUT/report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.pipeline import Pipeline, nnunet_environment

ARM_TRAINERS = {"real": "nnUNetTrainerBudget", "synth": "nnUNetTrainerSynth"}
PLANS_NAME = "nnsynthCPU"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="end-to-end demo on the offline demo cohort: real-only vs synthetic arm",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=Path("demo_output"),
                   help="folder for the nnU-Net folders, logs and the report (default: ./demo_output)")
    p.add_argument("--dataset-id", type=int, default=990)
    p.add_argument("--subjects", type=int, default=40, help="demo cohort size (a quarter is held out as test)")
    p.add_argument("--spacing", type=float, default=2.0, help="demo cohort voxel size in mm")
    p.add_argument("--real-cases", type=int, default=10, help="real training cases in the data-scarce split")
    p.add_argument("--val-cases", type=int, default=5, help="real validation cases (nnU-Net's own validation)")
    p.add_argument("--arms", nargs="+", choices=sorted(ARM_TRAINERS), default=["real", "synth"])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--iterations", type=int, default=25, help="training iterations per epoch")
    p.add_argument("--val-iterations", type=int, default=3)
    p.add_argument("--patch", type=int, default=48, help="cubic patch size of the shrunk plans")
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--base-features", type=int, default=8)
    p.add_argument("--final-validation", action="store_true",
                   help="also run nnU-Net's final validation of the fold (slow on a CPU; the test set is scored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete OUTPUT first instead of reusing finished steps")
    p.set_defaults(func=run_demo)


def choose_split(train_ids: list[str], lesion_ids: set[str], n_real: int, n_val: int,
                 seed: int) -> tuple[list[str], list[str]]:
    """A data-scarce split: n_real training cases (at least one with a lesion) and n_val validation cases."""
    if n_real < 1 or n_val < 1 or n_real + n_val > len(train_ids):
        raise NNSynthError(f"--real-cases {n_real} + --val-cases {n_val} must be >= 1 each and at most the "
                           f"{len(train_ids)} training subjects of the cohort")
    rng = np.random.default_rng(seed)
    order = [train_ids[i] for i in rng.permutation(len(train_ids))]
    with_lesion = [c for c in order if c in lesion_ids]
    if not with_lesion:
        raise NNSynthError("the cohort has no training case with a lesion")
    train = [with_lesion[0]] + [c for c in order if c != with_lesion[0]][: n_real - 1]
    rest = [c for c in order if c not in train]
    return sorted(train), sorted(rest[:n_val])


def _dice(summary_file: Path) -> tuple[float, int]:
    summary = json.loads(summary_file.read_text())
    per_case = [c["metrics"]["1"]["Dice"] for c in summary["metric_per_case"]]
    scored = [d for d in per_case if d is not None and not (isinstance(d, float) and math.isnan(d))]
    return float(summary["foreground_mean"]["Dice"]), len(scored)


def run_demo(args: argparse.Namespace) -> int:
    out: Path = args.output.resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    (out / "report").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trainer_path = Pipeline(env=dict(os.environ), log_file=out / "demo.log", quiet=True).run(
        "locate trainers", ["nnsynth", "trainer-path"]).strip()
    env = nnunet_environment(out, trainer_path)
    env.update({"NNSYNTH_EPOCHS": str(args.epochs), "NNSYNTH_ITERATIONS": str(args.iterations),
                "NNSYNTH_VAL_ITERATIONS": str(args.val_iterations), "NNSYNTH_SAVE_EVERY": str(args.epochs),
                "NNSYNTH_FINAL_VALIDATION": "1" if args.final_validation else "0"})
    pipe = Pipeline(env=env, log_file=out / "demo.log")
    ds = f"{args.dataset_id:03d}"
    raw_root, pre_root = Path(env["nnUNet_raw"]), Path(env["nnUNet_preprocessed"])

    raw = next(iter(raw_root.glob(f"Dataset{ds}_*")), None)
    if raw is None:
        pipe.run("demo cohort", ["nnsynth", "demo-cohort", "--dataset-id", args.dataset_id, "--subjects",
                                 args.subjects, "--seed", args.seed, "--spacing", args.spacing, "-np", 2])
        raw = next(raw_root.glob(f"Dataset{ds}_*"))
    pre = pre_root / raw.name
    if not (pre / "nnUNetPlans.json").is_file() or not (pre / "nnUNetPlans_3d_fullres").is_dir():
        pipe.run("plan and preprocess", ["nnUNetv2_plan_and_preprocess", "-d", args.dataset_id, "-c", "3d_fullres",
                                         "-np", 2, "--verify_dataset_integrity"], {"nnUNet_n_proc_DA": "1"})
    pipe.run("shrink plans", ["nnsynth", "shrink-plans", "-d", args.dataset_id, "--plans-name", PLANS_NAME,
                              "--patch-size", args.patch, args.patch, args.patch, "--stages", args.stages,
                              "--base-features", args.base_features])

    train_ids = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTr").glob("*.nii.gz"))
    lesion_ids = {c for c in train_ids if _has_lesion(raw / "labelsTr" / f"{c}.nii.gz")}
    train, val = choose_split(train_ids, lesion_ids, args.real_cases, args.val_cases, args.seed)
    (pre / "splits_final.json").write_text(json.dumps([{"train": train, "val": val}], indent=2))
    print(f"data-scarce split (fold 0): {len(train)} real training cases, {len(val)} validation cases")

    test_cases = sorted((raw / "labelsTs").glob("*.nii.gz"))
    results = {}
    for arm in args.arms:
        trainer = ARM_TRAINERS[arm]
        t0 = time.perf_counter()
        pipe.run(f"train {arm} arm ({trainer})", ["nnUNetv2_train", args.dataset_id, "3d_fullres", "0", "-tr", trainer,
                                                   "-p", PLANS_NAME, "-device", "cpu"])
        train_s = time.perf_counter() - t0
        pred = out / f"predictions_{arm}"
        pipe.run(f"predict test set ({arm})", ["nnUNetv2_predict", "-i", raw / "imagesTs", "-o", pred, "-d",
                                               args.dataset_id, "-c", "3d_fullres", "-tr", trainer, "-p", PLANS_NAME,
                                               "-f", "0", "-device", "cpu", "--disable_tta", "-npp", 1, "-nps", 1])
        pipe.run(f"evaluate ({arm})", ["nnUNetv2_evaluate_folder", raw / "labelsTs", pred, "-djfile",
                                       pred / "dataset.json", "-pfile", pred / "plans.json", "-np", 1])
        pipe.run(f"stroke metrics ({arm})", ["nnsynth", "evaluate", raw / "labelsTs", pred, "-o",
                                             pred / "stroke_metrics.json"])
        dice, n_scored = _dice(pred / "summary.json")
        stroke = json.loads((pred / "stroke_metrics.json").read_text())["mean"]
        results[arm] = {"trainer": trainer, "test_dice": dice, "test_cases_scored": n_scored,
                        "stroke_metrics": stroke, "train_seconds": round(train_s, 1),
                        "summary": str(pred / "summary.json")}

    total = time.perf_counter() - start
    report = {"results": results, "real_training_cases": train, "validation_cases": val,
              "trainer_path": trainer_path, "plans": PLANS_NAME,
              "budget": {"epochs": args.epochs, "iterations": args.iterations, "patch": args.patch},
              "cohort": {"subjects": args.subjects, "spacing_mm": args.spacing},
              "timings_seconds": {k: round(v, 1) for k, v in pipe.timings}, "total_seconds": round(total, 1)}
    (out / "report" / "demo_results.json").write_text(json.dumps(report, indent=2))
    lines = ["| arm | trainer | Dice (nnU-Net) | Dice (ISLES) | lesion F1 | abs volume diff (ml) | abs count diff "
             "| training time (s) |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {a} | {r['trainer']} | {r['test_dice']:.3f} | {r['stroke_metrics']['dice']:.3f} | "
              f"{r['stroke_metrics']['lesion_f1']:.3f} | {r['stroke_metrics']['abs_volume_diff_ml']:.2f} | "
              f"{r['stroke_metrics']['abs_count_diff']:.2f} | {r['train_seconds']:.0f} |" for a, r in results.items()]
    table = "\n".join(lines)
    (out / "report" / "demo_results.md").write_text(
        f"# nnsynth demo\n\n{len(train)} real training cases, budget {args.epochs} epochs x {args.iterations} "
        f"iterations, patch {args.patch}^3, {len(test_cases)} held-out test subjects. Dice (nnU-Net): "
        f"nnUNetv2_evaluate_folder's foreground mean (cases where both masks are empty are left out); the other "
        f"columns: nnsynth evaluate (ISLES'22 metrics, Dice 1 for two empty masks).\n\n{table}\n\n"
        f"Total wall time: {total / 60:.1f} min\n")
    print("\n" + table)
    print(f"\ndemo finished in {total / 60:.1f} min; report: {out / 'report'}")
    return 0


def _has_lesion(label_file: Path) -> bool:
    import nibabel as nib

    return bool(np.asarray(nib.load(str(label_file)).dataobj).any())

