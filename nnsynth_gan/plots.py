"""PNG figures for GAN training and reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < 3 or window <= 1:
        return y
    window = min(window, len(y))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def save_figure(fig: plt.Figure, path: Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG atomically (temporary file, then rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_losses(history: Mapping[str, Sequence[float]], path: Path, title: str = "") -> Path:
    """One panel per logged quantity against the step (raw in light colour, moving average on top)."""
    keys = [k for k in history if k != "step" and len(history[k])]
    steps = np.asarray(history["step"], float)
    cols = 2
    rows = max(1, int(np.ceil(len(keys) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3 * rows), squeeze=False)
    window = max(1, len(steps) // 50)
    for ax, key in zip(axes.flat, keys):
        y = np.asarray(history[key], float)
        ax.plot(steps, y, color="tab:blue", alpha=0.3, lw=0.8)
        ax.plot(steps, _smooth(y, window), color="tab:blue", lw=1.5)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_mask_mosaic(rows: Sequence[tuple[str, Sequence[np.ndarray], Sequence[str]]], path: Path,
                     title: str = "") -> Path:
    """Grid of maximum-intensity projections (along the last axis) of 3D masks, one labelled row per group."""
    ncols = max(len(masks) for _, masks, _ in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.6 * ncols, 1.8 * len(rows)), squeeze=False)
    for r, (label, masks, captions) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(masks):
                ax.axis("off")
                continue
            ax.imshow(np.asarray(masks[c], float).max(axis=2).T, cmap="gray", origin="lower", vmin=0, vmax=1)
            if c < len(captions):
                ax.set_title(captions[c], fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_occupancy(maps: Mapping[str, np.ndarray], path: Path, title: str = "") -> Path:
    """Mean projections of lesion-occupancy maps (normalized brain box) along each axis, one row per map."""
    names = list(maps)
    fig, axes = plt.subplots(len(names), 3, figsize=(9, 3 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        occ = np.asarray(maps[name], float)
        for axis in range(3):
            ax = axes[r, axis]
            proj = occ.mean(axis=axis)
            im = ax.imshow(proj.T, origin="lower", cmap="hot", vmin=0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: mean along axis {axis}", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
