"""`nnsynth evaluate`: stroke metrics on nnU-Net prediction folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_synth import arguments as arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="ISLES'22 stroke metrics: Dice, volume difference (ml), lesion count difference, lesion F1",
        description="Compare reference masks with predictions (files matched by name, .nii.gz or .nii). "
                    "Writes per-case results and the mean as JSON, and the same table as CSV beside it.")
    p.add_argument("gt_dir", type=Path, help="folder with reference masks (e.g. labelsTs)")
    p.add_argument("pred_dir", type=Path, help="folder with predicted masks (e.g. nnUNetv2_predict output)")
    p.add_argument("-o", "--output", type=arg.output_file, default=None,
                   help="JSON file to write (default: PRED_DIR/stroke_metrics.json); the CSV goes beside it")
    p.add_argument("--allow-missing", action="store_true", help="score the cases that have a prediction")
    p.add_argument("--merge-labels", action="store_true",
                   help="count every label > 0 as lesion (default: refuse maps with labels other than 0/1)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nnunet_synth.evaluation.metrics import evaluate_folders, write_results

    results = evaluate_folders(args.gt_dir, args.pred_dir, allow_missing=args.allow_missing,
                               merge_labels=args.merge_labels)
    out = args.output or args.pred_dir / "stroke_metrics.json"
    csv_file = write_results(results, out)
    m = results["mean"]
    print(f"{results['n_cases']} cases: Dice {m['dice']:.4f}, lesion F1 {m['lesion_f1']:.4f}, "
          f"|volume diff| {m['abs_volume_diff_ml']:.2f} ml, |count diff| {m['abs_count_diff']:.2f}")
    print(f"wrote {out} and {csv_file}")
    return 0
