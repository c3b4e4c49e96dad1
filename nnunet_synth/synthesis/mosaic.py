"""A picture of synthetic training cases next to real ones, as nnU-Net's loader sees them.

Columns are cases; rows are (real | synthetic, per engine) x channel, each an axial slice through the
lesion's centre with the lesion outlined, in nnU-Net's normalized intensities with one colour scale
per channel, so a reader can judge at a glance whether the synthetic cases look like the real ones.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from nnunet_synth.errors import NNSynthError


def _slice_index(seg: np.ndarray) -> int:
    """Axial (last-axis) index through the largest lesion area, else the middle."""
    area = (seg > 0).sum(axis=(0, 1))
    return int(area.argmax()) if area.any() else seg.shape[-1] // 2


def _panel(ax, image: np.ndarray, seg: np.ndarray, vrange: tuple[float, float], title: str | None,
           outline: bool = True) -> None:
    ax.imshow(np.rot90(image), cmap="gray", vmin=vrange[0], vmax=vrange[1])
    if outline and (seg > 0).any():
        ax.contour(np.rot90((seg > 0).astype(float)), levels=[0.5], colors="red", linewidths=0.7)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


Panel = tuple[str, np.ndarray, np.ndarray]  # (title, image (C, *S), seg (1, *S))


def real_panels(training, n: int) -> list[Panel]:
    """Up to n of the fold's real training cases, those with a lesion first."""
    panels = []
    for case in training.case_ids:
        data, seg, _, _ = training.dataset.load_case(case)
        panels.append((f"real {case}", np.asarray(data), np.asarray(seg)))
    return sorted(panels, key=lambda c: not (c[2] > 0).any())[:n]


def synthetic_panels(engine, n: int, rng: np.random.Generator) -> tuple[list[Panel], list]:
    """n cases of an engine as panels, and the cases themselves."""
    cases = [engine.make_case(rng) for _ in range(n)]
    return [(f"synthetic {i}: anatomy {c.provenance['anatomy']}", c.image, c.lesion[None].astype(np.int8))
            for i, c in enumerate(cases)], cases


def draw_mosaic(rows: list[tuple[str, list[Panel]]], channels: list[str], out_png: Path, title: str,
                outlines: list[bool] | None = None) -> Path:
    """Rows of panels x channels; intensity range per channel from the first row (the real cases).

    ``outlines``: per row, whether the lesion is outlined (a row without shows the same slice bare, where a
    seam would show).
    """
    outlines = outlines or [True] * len(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = rows[0][1]
    ranges = []
    for c in range(len(channels)):
        vals = np.concatenate([d[c][s[0] >= 0].ravel() for _, d, s in reference])
        ranges.append(tuple(np.percentile(vals, [1, 99])))
    n = max(len(panels) for _, panels in rows)
    n_rows = len(rows) * len(channels)
    fig, axes = plt.subplots(n_rows, n, figsize=(1.9 * n, 2.0 * n_rows), dpi=110, squeeze=False)
    for r, (row_label, panels) in enumerate(rows):
        for c, channel in enumerate(channels):
            row = r * len(channels) + c
            for col in range(n):
                ax = axes[row, col]
                if col >= len(panels):
                    ax.axis("off")
                    continue
                panel_title, data, seg = panels[col]
                z = _slice_index(seg[0])
                _panel(ax, data[c][..., z], seg[0][..., z], ranges[c], panel_title if c == 0 else None, outlines[r])
            axes[row, 0].set_ylabel("\n".join(textwrap.wrap(row_label, 28)) + f"\n{channel}", fontsize=6)
    outlined = "lesion outlined in red" + ("" if all(outlines) else " (rows marked 'bare': the same slice without)")
    fig.suptitle("\n".join(textwrap.wrap(f"{title}; axial slices (last axis of the preprocessed grid) through "
                                          f"the largest lesion area, {outlined}", 110)), fontsize=8)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


def channel_names(pre, n_channels: int) -> list[str]:
    return list(pre.dataset_json.get("channel_names", {}).values()) or [str(c) for c in range(n_channels)]


def synthesis_mosaic(dataset_id: int, plans_name: str, fold: int, out_png: Path, n: int = 4, seed: int = 0,
                     engines: tuple[tuple[str, str], ...] = (("real", "gmm"),), configuration: str = "3d_fullres",
                     log=print, notes: dict[tuple[str, str], str] | None = None) -> dict:
    """Write the mosaic for the fold's training cases; ``engines`` = (lesion source, renderer) pairs.

    An engine that cannot be built (no checkpoint for a learned generator) is left out and named in
    the returned dict, so the picture still shows what is available.
    """
    from nnunet_synth.nnunet_io.folds import fold_case_ids
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.synthesis.builder import build_engine

    pre = open_preprocessed(dataset_id, plans_name, configuration)
    training = TrainingCases.of(pre, sorted(fold_case_ids(pre, fold, create=False)[0]))
    rng = np.random.default_rng(seed)
    real = real_panels(training, n)
    rows = [("real", real)]
    skipped = {}
    for lesions, renderer in engines:
        label = f"synthetic ({lesions} lesions, {renderer})"
        try:
            engine = build_engine(training, lesions, renderer, fold=fold, seed=seed, log=log)
        except NNSynthError as exc:
            skipped[label] = str(exc)
            continue
        rows.append((label, synthetic_panels(engine, n, rng)[0]))
    noted = {f"synthetic ({k[0]} lesions, {k[1]})": v for k, v in (notes or {}).items()}
    drawn = [(f"{label} = {noted[label]}" if label in noted else label, panels) for label, panels in rows]
    draw_mosaic(drawn, channel_names(pre, len(real[0][1])), out_png,
                f"{pre.name} fold {fold}: real training cases vs synthetic cases")
    return {"png": str(out_png), "rows": [label for label, _ in rows], "skipped": skipped,
            "row_notes": {label: noted[label] for label, _ in rows if label in noted}}
