"""False-positive lesions of an experiment's runs: how many per test case, and how big.

A lesion-wise F1 that drops while Dice holds means extra predicted lesions; this tells whether they are
speckle (a few voxels: the network fires on single bright voxels) or whole false lesions. For each
finished run of ``nnsynth experiment`` whose predictions are still on disk:

    python scripts/fp_components.py docs/experiment_evidence --labels $nnUNet_raw/Dataset992_NNSynthEvidence/labelsTs

A predicted component (26-connectivity) is a false positive when it touches no reference lesion voxel.
Prints a table per arm (mean over its runs) and writes ``fp_components_<predictions>.md`` and ``.json``
next to the report. Label files are read and checked as ``nnsynth evaluate`` reads them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import cc3d
import numpy as np

from nnunet_synth.evaluation.metrics import check_same_grid, read_label_volume
from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic


def false_positive_sizes(prediction: np.ndarray, reference: np.ndarray) -> list[int]:
    """Voxel counts of the predicted components that touch no reference voxel."""
    labels = cc3d.connected_components(prediction.astype(np.uint8), connectivity=26)
    if labels.max() == 0:
        return []
    counts = np.bincount(labels.ravel())
    touched = set(np.unique(labels[reference & (labels > 0)]).tolist())
    return [int(counts[i]) for i in range(1, len(counts)) if i not in touched]


def run_figures(predictions: Path, labels: Path) -> dict:
    sizes, cases, voxel_ml = [], 0, 0.0
    for pred_file in sorted(predictions.glob("*.nii.gz")):
        ref_file = labels / pred_file.name
        if not ref_file.is_file():
            raise SystemExit(f"{pred_file}: no reference {ref_file}")
        pred, ref = read_label_volume(pred_file, "prediction"), read_label_volume(ref_file, "reference")
        check_same_grid(ref, pred)
        sizes += false_positive_sizes(pred.data > 0, ref.data > 0)
        voxel_ml = float(np.prod(pred.zooms)) / 1000.0
        cases += 1
    arr = np.array(sizes, float)
    return {"cases": cases, "fp_per_case": len(sizes) / max(cases, 1),
            "median_fp_ml": float(np.median(arr) * voxel_ml) if len(arr) else 0.0,
            "share_fp_up_to_5_voxels": float(np.mean(arr <= 5)) if len(arr) else 0.0,
            "fp_volume_ml_per_case": float(arr.sum() * voxel_ml / max(cases, 1))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", type=Path, help="the experiment's output folder (holds runs/)")
    ap.add_argument("--labels", type=Path, required=True, help="reference labels of the in-domain test set")
    ap.add_argument("--predictions", default="predictions", help="prediction folder name inside each run")
    args = ap.parse_args()
    per_run = {}
    for result_file in sorted((args.experiment / "runs").glob("*/result.json")):
        result = json.loads(result_file.read_text())
        pred = result_file.parent / args.predictions
        if not any(pred.glob("*.nii.gz")):
            continue
        per_run[result["name"]] = {"arm": result["arm"], "n_real": result["n_real"], "seed": result["seed"],
                                   **run_figures(pred, args.labels)}
    if not per_run:
        raise SystemExit(f"no finished run with predictions under {args.experiment / 'runs'}")
    lines = [f"# False-positive lesions per arm ({args.predictions})", "",
             f"`python scripts/fp_components.py {args.experiment} --labels {args.labels}`; a false positive is a "
             "predicted component (26-connectivity) touching no reference lesion; mean over the arm's runs.", "",
             "| real cases | arm | runs | FP lesions per case | median FP size (ml) | FP of <= 5 voxels | "
             "FP volume per case (ml) |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in per_run.values():
        groups.setdefault((r["n_real"], r["arm"]), []).append(r)
    for (n, arm), runs in sorted(groups.items()):
        m = {key: statistics.fmean(r[key] for r in runs) for key in
             ("fp_per_case", "median_fp_ml", "share_fp_up_to_5_voxels", "fp_volume_ml_per_case")}
        lines.append(f"| {n} | {arm} | {len(runs)} | {m['fp_per_case']:.2f} | {m['median_fp_ml']:.3f} | "
                     f"{m['share_fp_up_to_5_voxels']:.0%} | {m['fp_volume_ml_per_case']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    stem = args.experiment / f"fp_components_{args.predictions}"
    write_text_atomic(stem.with_suffix(".md"), text)
    write_json_atomic(stem.with_suffix(".json"), per_run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
