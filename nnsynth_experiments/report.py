"""Tables (markdown + CSV, mean +/- sd per cell) and the plot of the data-scarce experiment."""

from __future__ import annotations

import csv
import io
import math
import textwrap
from pathlib import Path

import numpy as np

METRICS = (  # (key in a run result, column title, format)
    ("dice", "Dice (ISLES)", "{:.3f}"),
    ("dice_nnunet", "Dice (nnU-Net)", "{:.3f}"),
    ("lesion_f1", "lesion F1", "{:.3f}"),
    ("abs_volume_diff_ml", "abs volume diff (ml)", "{:.2f}"),
    ("abs_count_diff", "abs count diff", "{:.2f}"),
)


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0  # shown as n/a for one run


def aggregate(results: list[dict]) -> list[dict]:
    """One row per (n_real, arm): run count and mean/sd of every metric over the seeds."""
    cells: dict[tuple[int, str], list[dict]] = {}
    for r in results:
        cells.setdefault((r["n_real"], r["arm"]), []).append(r)
    rows = []
    for (n, arm), runs in sorted(cells.items()):
        row = {"n_real": n, "arm": arm, "runs": len(runs), "seeds": sorted(r["seed"] for r in runs)}
        for key, _, _ in METRICS:
            row[f"{key}_mean"], row[f"{key}_sd"] = _stats([r.get(key) for r in runs])
        rows.append(row)
    return rows


def _cell(mean: float, sd: float, runs: int, fmt: str) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return fmt.format(mean) + (" +/- " + fmt.format(sd) if runs > 1 else " (1 run, sd n/a)")


def markdown_table(rows: list[dict]) -> str:
    head = "| real cases | arm | runs | " + " | ".join(title for _, title, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    for row in rows:
        cells = [_cell(row[f"{k}_mean"], row[f"{k}_sd"], row["runs"], fmt) for k, _, fmt in METRICS]
        lines.append(f"| {row['n_real']} | {row['arm']} | {row['runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    fields = ["n_real", "arm", "runs"] + [f"{k}_{s}" for k, _, _ in METRICS for s in ("mean", "sd")]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def runs_csv_text(results: list[dict]) -> str:
    out = io.StringIO()
    fields = ["name", "n_real", "seed", "arm", "trainer", "fold", "train_seconds"] + [k for k, _, _ in METRICS]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(results, key=lambda r: (r["n_real"], r["seed"], r["arm"])))
    return out.getvalue()


def plot_dice(rows: list[dict], path: Path, title: str) -> Path:
    """Dice (ISLES) against the number of real cases, one line per arm, error bars = sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    several = any(r["runs"] > 1 for r in rows)
    for arm in sorted({r["arm"] for r in rows}):
        pts = sorted((r["n_real"], r["dice_mean"], r["dice_sd"] if r["runs"] > 1 else 0.0)
                     for r in rows if r["arm"] == arm)
        xs, ys, sds = zip(*pts)
        if several:
            ax.errorbar(xs, ys, yerr=sds, marker="o", capsize=4, label=arm)
        else:
            ax.plot(xs, ys, marker="o", label=arm)
    ax.set_xlabel("real training cases")
    ax.set_ylabel("test Dice (ISLES, mean +/- sd over seeds)" if several else "test Dice (ISLES), one run per point")
    ax.set_xticks(sorted({r["n_real"] for r in rows}))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("\n".join(textwrap.wrap(title, 75)), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


PAIRED_METRICS = (("dice", "Dice (ISLES)", "{:+.3f}"), ("lesion_f1", "lesion F1", "{:+.3f}"),
                  ("abs_volume_diff_ml", "abs volume diff (ml)", "{:+.2f}"))


def _metric_values(side: dict[int, dict[str, dict]], metric: str) -> dict[int, dict[str, float]]:
    return {seed: {case: values.get(metric) for case, values in cases.items()} for seed, cases in side.items()}


def paired_rows(results: list[dict], per_case: dict[str, dict[str, dict]], reference: str = "real") -> list[dict]:
    """Paired differences (arm - reference) per number of real cases, arm and metric.

    ``per_case``: {run name: {test case: {metric: value}}} (``nnsynth evaluate``'s per-case table).
    """
    from nnunet_synth.evaluation.paired import paired_difference

    rows = []
    for n in sorted({r["n_real"] for r in results}):
        runs = [r for r in results if r["n_real"] == n]
        ref = {r["seed"]: per_case.get(r["name"], {}) for r in runs if r["arm"] == reference}
        for arm in sorted({r["arm"] for r in runs} - {reference}):
            other = {r["seed"]: per_case.get(r["name"], {}) for r in runs if r["arm"] == arm}
            for metric, title, _ in PAIRED_METRICS:
                try:
                    d = paired_difference(_metric_values(ref, metric), _metric_values(other, metric), metric)
                except ValueError:
                    continue
                rows.append({"n_real": n, "arm": arm, "reference": reference, "metric_title": title, **d.to_dict()})
    return rows


def paired_markdown(rows: list[dict]) -> str:
    head = ("| real cases | arm - real | metric | difference [95% CI] | p (paired t over seeds) | seeds better | "
            "training sd | test sd | verdict |")
    lines = [head, "|" + "---|" * 9]
    fmts = {m: f for m, _, f in PAIRED_METRICS}
    for r in rows:
        f = fmts[r["metric"]]
        p = "n/a" if r["p_value"] is None else f"{r['p_value']:.3f}"
        train_sd = "n/a" if r["training_sd"] is None else f"{r['training_sd']:.3f}"
        lines.append(f"| {r['n_real']} | {r['arm']} | {r['metric_title']} | {f.format(r['mean_difference'])} "
                     f"[{f.format(r['ci_low'])}, {f.format(r['ci_high'])}] | {p} | {r['seeds_better']}/{r['n_seeds']} "
                     f"| {train_sd} | {r['test_sd']:.3f} | {r['verdict']} |")
    return "\n".join(lines)


def headline(rows: list[dict]) -> str:
    """One sentence for the top of a report: the Dice verdict at every size."""
    dice = [r for r in rows if r["metric"] == "dice"]
    if not dice:
        return "No paired comparison (only one arm)."
    parts = []
    for r in dice:
        parts.append(f"{r['arm']} - {r['reference']} at {r['n_real']} real cases: Dice {r['mean_difference']:+.3f} "
                     f"[95% CI {r['ci_low']:+.3f}, {r['ci_high']:+.3f}], {r['n_seeds']} seed(s): {r['verdict']}")
    return "; ".join(parts) + "."


def failed_runs(results: list[dict]) -> list[dict]:
    """Runs that never learned the lesions: on the in-domain test set, which holds lesions, no predicted voxel
    overlaps any reference lesion (nnU-Net's foreground Dice 0) or nothing is predicted at all.

    A paired difference against such a run measures the failure, not the arm; the report names these runs and
    repeats the Dice comparison without their seeds (the failure can hit the reference as well as an arm).
    """
    return [r for r in results if (r.get("gt_volume_ml") or 0) > 0
            and (r.get("dice_nnunet") == 0 or r.get("pred_volume_ml") == 0)]


def without_failed_seeds(results: list[dict]) -> list[dict]:
    """The results minus every run of a (real cases, seed) pair in which any arm failed (``failed_runs``)."""
    dropped = {(r["n_real"], r["seed"]) for r in failed_runs(results)}
    return [r for r in results if (r["n_real"], r["seed"]) not in dropped]


def failed_runs_markdown(results: list[dict], per_case: dict[str, dict[str, dict]], reference: str) -> str:
    """The report's section on runs that never learned, with the in-domain Dice comparison without their seeds;
    empty when every run learned."""
    failed = failed_runs(results)
    if not failed:
        return ""
    names = ", ".join(f"`{r['name']}`" for r in failed)
    rows = [r for r in paired_rows(without_failed_seeds(results), per_case, reference) if r["metric"] == "dice"]
    body = (f"## Runs that never learned the lesions\n\n{len(failed)} run(s) predicted no voxel of any reference "
            f"lesion on the in-domain test set: {names}. Their seeds' paired differences compare against a failed "
            "run. In-domain Dice without those seeds:\n\n")
    return body + (paired_markdown(rows) if rows else "(no paired seed left)")


SIZE_STRATA = (("< 1 ml", 0.0, 1.0), ("1-10 ml", 1.0, 10.0), ("> 10 ml", 10.0, math.inf))


def stratified_rows(results: list[dict], per_case: dict[str, dict[str, dict]]) -> list[dict]:
    """Per (real cases, arm, stratum): Dice and lesion F1 by reference lesion volume, and on lesion-free
    test cases the false-positive volume and the share of cases with any predicted lesion.

    Means over every (seed, test case) of the cell; ``cases`` counts the test cases per seed.
    """
    rows = []
    for n in sorted({r["n_real"] for r in results}):
        for arm in sorted({r["arm"] for r in results if r["n_real"] == n}):
            cases = [c for r in results if r["n_real"] == n and r["arm"] == arm
                     for c in per_case.get(r["name"], {}).values()]
            seeds = max(1, len({r["seed"] for r in results if r["n_real"] == n and r["arm"] == arm}))
            for title, lo, hi in SIZE_STRATA:
                cell = [c for c in cases if c["gt_volume_ml"] > 0 and lo <= c["gt_volume_ml"] < hi]
                if cell:
                    rows.append({"n_real": n, "arm": arm, "stratum": title, "cases": len(cell) // seeds,
                                 "dice": float(np.mean([c["dice"] for c in cell])),
                                 "lesion_f1": float(np.mean([c["lesion_f1"] for c in cell]))})
            free = [c for c in cases if c["gt_volume_ml"] == 0]
            if free:
                rows.append({"n_real": n, "arm": arm, "stratum": "lesion-free", "cases": len(free) // seeds,
                             "fp_volume_ml": float(np.mean([c["pred_volume_ml"] for c in free])),
                             "fp_case_share": float(np.mean([c["pred_count"] > 0 for c in free]))})
    return rows


def stratified_markdown(rows: list[dict]) -> str:
    lines = ["| real cases | arm | reference lesions | test cases | Dice | lesion F1 | FP volume (ml) | "
             "cases with FP |", "|" + "---|" * 8]
    for r in rows:
        if r["stratum"] == "lesion-free":
            lines.append(f"| {r['n_real']} | {r['arm']} | none | {r['cases']} | | | {r['fp_volume_ml']:.2f} | "
                         f"{100 * r['fp_case_share']:.0f}% |")
        else:
            lines.append(f"| {r['n_real']} | {r['arm']} | {r['stratum']} | {r['cases']} | {r['dice']:.3f} | "
                         f"{r['lesion_f1']:.3f} | | |")
    return "\n".join(lines)
