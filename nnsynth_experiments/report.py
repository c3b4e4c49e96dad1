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
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


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


def markdown_table(rows: list[dict]) -> str:
    head = "| real cases | arm | runs | " + " | ".join(title for _, title, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    for row in rows:
        cells = [fmt.format(row[f"{k}_mean"]) + " +/- " + fmt.format(row[f"{k}_sd"]) for k, _, fmt in METRICS]
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
    for arm in sorted({r["arm"] for r in rows}):
        pts = sorted((r["n_real"], r["dice_mean"], r["dice_sd"]) for r in rows if r["arm"] == arm)
        xs, ys, sds = zip(*pts)
        ax.errorbar(xs, ys, yerr=sds, marker="o", capsize=4, label=arm)
    ax.set_xlabel("real training cases")
    ax.set_ylabel("test Dice (ISLES, mean +/- sd over seeds)")
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
