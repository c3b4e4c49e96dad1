"""A picture of synthetic training cases next to real ones, as nnU-Net's loader sees them.

Columns are cases; rows are (real | synthetic, per engine) x channel, each an axial slice through the
lesion's centre with the lesion outlined, in nnU-Net's normalized intensities with one colour scale
per channel, so a reader can judge at a glance whether the synthetic cases look like the real ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_synth.errors import NNSynthError


def _slice_index(seg: np.ndarray) -> int:
    """Axial (last-axis) index through the largest lesion area, else the middle."""
    area = (seg > 0).sum(axis=(0, 1))
    return int(area.argmax()) if area.any() else seg.shape[-1] // 2


def _panel(ax, image: np.ndarray, seg: np.ndarray, vrange: tuple[float, float], title: str | None) -> None:
    ax.imshow(np.rot90(image), cmap="gray", vmin=vrange[0], vmax=vrange[1])
    if (seg > 0).any():
        ax.contour(np.rot90((seg > 0).astype(float)), levels=[0.5], colors="red", linewidths=0.7)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def synthesis_mosaic(dataset_id: int, plans_name: str, fold: int, out_png: Path, n: int = 4, seed: int = 0,
                     engines: tuple[tuple[str, str], ...] = (("real", "gmm"),), configuration: str = "3d_fullres",
                     log=print) -> dict:
    """Write the mosaic for the fold's training cases; ``engines`` = (lesion source, renderer) pairs.

    An engine that cannot be built (no checkpoint for a learned generator) is left out and named in
    the returned dict, so the picture still shows what is available.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_synth.nnunet_io.folds import fold_case_ids
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.synthesis.builder import build_engine

    pre = open_preprocessed(dataset_id, plans_name, configuration)
    train_ids = sorted(fold_case_ids(pre, fold, create=False)[0])
    training = TrainingCases.of(pre, train_ids)
    dataset = training.dataset
    rng = np.random.default_rng(seed)
    loaded = {}
    for case in train_ids:  # cases with a lesion first, then the others, n in all
        data, seg, _, _ = dataset.load_case(case)
        loaded[case] = (f"real {case}", np.asarray(data), np.asarray(seg))
    real_cases = sorted(loaded.values(), key=lambda c: not (c[2] > 0).any())[:n]
    rows = [("real", real_cases)]
    skipped = {}
    for lesions, renderer in engines:
        label = f"synthetic ({lesions} lesions, {renderer})"
        try:
            engine = build_engine(training, lesions, renderer, fold=fold, seed=seed, log=log)
        except NNSynthError as exc:
            skipped[label] = str(exc)
            continue
        cases = []
        for i in range(n):
            case = engine.make_case(rng)
            cases.append((f"{label.split(' (')[0]} {i}: anatomy {case.provenance['anatomy']}",
                          case.image, case.lesion[None].astype(np.int8)))
        rows.append((label, cases))
    n_channels = len(real_cases[0][1])
    channels = list(pre.dataset_json.get("channel_names", {}).values()) or [str(c) for c in range(n_channels)]
    ranges = []
    for c in range(len(channels)):
        vals = np.concatenate([d[c][s[0] >= 0].ravel() for _, d, s in real_cases])
        ranges.append(tuple(np.percentile(vals, [1, 99])))
    n_rows = len(rows) * len(channels)
    fig, axes = plt.subplots(n_rows, n, figsize=(1.9 * n, 2.0 * n_rows), dpi=110, squeeze=False)
    for r, (row_label, cases) in enumerate(rows):
        for c, channel in enumerate(channels):
            row = r * len(channels) + c
            for col in range(n):
                ax = axes[row, col]
                if col >= len(cases):
                    ax.axis("off")
                    continue
                title, data, seg = cases[col]
                z = _slice_index(seg[0])
                _panel(ax, data[c][..., z], seg[0][..., z], ranges[c], title if c == 0 else None)
            axes[row, 0].set_ylabel(f"{row_label}\n{channel}", fontsize=7)
    fig.suptitle(f"{pre.name} fold {fold}: real training cases vs synthetic cases (lesion outlined)", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return {"png": str(out_png), "rows": [label for label, _ in rows], "skipped": skipped}
