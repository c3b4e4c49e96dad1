"""The conversion summary: what a user checks first (did every case arrive, are the sizes sane)."""

from __future__ import annotations

import numpy as np

from nnsynth_datasets.convert.writer import CaseResult

QUANTILES = {"min": 0.0, "q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95, "max": 1.0}


def _ranges(rows: list[tuple[float, ...]], digits: int) -> dict[str, list[float]]:
    if not rows:
        return {}
    arr = np.asarray(rows, dtype=np.float64)
    return {key: [round(float(v), digits) for v in fn(arr, axis=0)]
            for key, fn in (("min", np.min), ("median", np.median), ("max", np.max))}


def build_summary(results: list[CaseResult], skipped: list[CaseResult], **info: object) -> dict:
    """JSON-ready summary of the converted cases (``info`` adds dataset name, source, timing...)."""
    training = [r for r in results if r.training]
    volumes = [r.lesion_ml for r in training if r.lesion_ml is not None]
    summary: dict = dict(info)
    summary.update({
        "num_training": len(training),
        "num_test": len(results) - len(training),
        "num_patients": len({r.patient_id for r in results}),
        "spacing_mm": _ranges([r.spacing for r in results], 4),
        "size_voxels": {k: [int(v) for v in vals] for k, vals in _ranges([r.shape for r in results], 0).items()},
        "lesion_volume_ml": ({k: round(float(np.quantile(volumes, q)), 3) for k, q in QUANTILES.items()}
                             if volumes else {}),
        "empty_masks": sorted(r.case_id for r in training if r.lesion_ml == 0),
        "binarized_masks": sorted(r.case_id for r in results if r.binarized),
        "resampled_channels": sorted({c for r in results for c in r.resampled}),
        "skipped": [{"case": r.case_id, "problems": [str(p) for p in r.problems]} for r in skipped],
    })
    return summary


def format_summary(summary: dict) -> str:
    """A few human-readable lines of the summary."""
    lines = [f"{summary.get('dataset', 'dataset')}: {summary['num_training']} training case(s), "
             f"{summary['num_test']} test case(s), {summary['num_patients']} patient(s)"]
    for key, label in (("spacing_mm", "spacing (mm)"), ("size_voxels", "size (voxels)")):
        rng = summary[key]
        if rng:
            lines.append(f"  {label}: min {rng['min']}  median {rng['median']}  max {rng['max']}")
    vol = summary["lesion_volume_ml"]
    if vol:
        lines.append("  lesion volume (ml): " + "  ".join(f"{k} {v:g}" for k, v in vol.items()))
    empty = summary["empty_masks"]
    lines.append(f"  empty masks: {len(empty)}" + (f" ({', '.join(empty)})" if empty else ""))
    if summary["binarized_masks"]:
        lines.append(f"  binarized masks: {len(summary['binarized_masks'])}")
    if summary["resampled_channels"]:
        lines.append(f"  resampled onto the reference grid: {', '.join(summary['resampled_channels'])}")
    if summary["skipped"]:
        lines.append(f"  skipped {len(summary['skipped'])} invalid case(s):")
        for item in summary["skipped"]:
            lines.extend(f"    {p}" for p in item["problems"])
    if summary.get("splits_file"):
        lines.append(f"  patient-grouped splits: {summary['splits_file']}")
    elif summary.get("splits_note"):
        lines.append(f"  splits: {summary['splits_note']}")
    return "\n".join(lines)
