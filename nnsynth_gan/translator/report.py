"""Quality report of label-map -> image translators on a fold's held-out (validation) cases.

Every renderer (each translator checkpoint, and the training-free Gaussian-mixture renderer fitted on the
same fold's training cases) renders the validation cases' own anatomical label maps; the output is
compared with the real preprocessed images, voxel for voxel, in nnU-Net's normalized intensity space:

* MAE, PSNR and SSIM per channel (scikit-image) over the brain (label map > background): the large
  background of a head volume would otherwise dominate. PSNR/SSIM use the real channel's range in the
  brain as ``data_range``; SSIM is the mean of the 3D SSIM map (7-voxel window) over brain voxels.
* mean intensity error per tissue class and channel (generated - real, signed and absolute);
* lesion-to-healthy-tissue contrast (mean lesion - mean parenchyma, normalized units) of real and
  generated images on the validation cases with a lesion;
* sample variety: mean |difference| in the brain between two renders of one label map with different
  seeds (0 for a deterministic renderer);
* checkerboard: the power at the period-2 frequency (what stride-2 transposed convolutions leave) as a
  share of the upper half of the spectrum, along each axis of the brain's box, generated over real
  (1 = as much as in the real scan).

A translator cannot be judged on a case it trained on, so a checkpoint whose training cases overlap the
report's cases is refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from nnsynth_gan.plots import save_figure  # noqa: E402
from nnunet_synth.errors import NNSynthError  # noqa: E402
from nnunet_synth.lesions.geometry import bbox  # noqa: E402
from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic

SSIM_WINDOW = 7
GMM_NAME = "gaussian_mixture"


# ---- figures ---------------------------------------------------------------------------------------
def _slice_index(labelmap: np.ndarray, lesion_label: int | None) -> int:
    """Axial slice (last axis) through the lesion's centre of mass, else through the middle."""
    if lesion_label is not None:
        zs = np.nonzero(labelmap == lesion_label)[2]
        if zs.size:
            return int(round(float(zs.mean())))
    return labelmap.shape[2] // 2


def label_colormap(num_classes: int, lesion_label: int | None) -> tuple[ListedColormap, BoundaryNorm]:
    """-1 (outside) dark grey, 0 (background) black, tissue classes in distinct colours, the lesion red."""
    tissue = ["tab:blue", "lightgrey", "white", "tab:green", "tab:purple", "tab:olive", "tab:cyan", "tab:pink"]
    colours = ["dimgrey", "black"] + [tissue[(k - 1) % len(tissue)] for k in range(1, max(num_classes, 1))]
    if lesion_label is not None and 0 < lesion_label < num_classes:
        colours[lesion_label + 1] = "red"
    return ListedColormap(colours), BoundaryNorm(np.arange(-1.5, num_classes), len(colours))


def plot_translations(rows: Sequence[tuple[str, np.ndarray, dict[str, np.ndarray]]], path: Path, title: str = "",
                      lesion_label: int | None = None) -> Path:
    """One row per case: label map | per channel, every image side by side (same window per channel)."""
    path = Path(path)
    names = list(rows[0][2])
    num_channels = rows[0][2][names[0]].shape[0]
    ncols = 1 + num_channels * len(names)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.9 * ncols, 2.1 * len(rows)), squeeze=False)
    for r, (case_id, labelmap, images) in enumerate(rows):
        z = _slice_index(labelmap, lesion_label)
        inside = labelmap[..., z] > 0
        ax = axes[r, 0]
        cmap, norm = label_colormap(int(labelmap.max()) + 1, lesion_label)
        ax.imshow(labelmap[..., z].T, cmap=cmap, norm=norm, origin="lower", interpolation="nearest")
        ax.set_title(f"{case_id} z={z}", fontsize=7)
        ref = images.get("real", images[names[0]])
        for c in range(num_channels):
            ref_slice = ref[c][..., z]
            vals = ref_slice[inside] if inside.any() else ref_slice.ravel()
            vmin, vmax = np.percentile(vals, [0.5, 99.5])
            for j, name in enumerate(names):
                ax = axes[r, 1 + c * len(names) + j]
                ax.imshow(images[name][c][..., z].T, cmap="gray", vmin=vmin, vmax=vmax, origin="lower")
                ax.set_title(f"{name} ch{c}", fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


# ---- metrics ---------------------------------------------------------------------------------------
def image_metrics(real: np.ndarray, generated: np.ndarray, brain: np.ndarray) -> dict[str, list[float]]:
    """MAE, PSNR and SSIM per channel over ``brain`` voxels."""
    out: dict[str, list[float]] = {"mae": [], "psnr": [], "ssim": []}
    win = min(SSIM_WINDOW, *[s if s % 2 else s - 1 for s in real.shape[1:]])
    for c in range(real.shape[0]):
        r, g = real[c].astype(np.float64), generated[c].astype(np.float64)
        rv, gv = r[brain], g[brain]
        data_range = float(rv.max() - rv.min()) or 1.0
        out["mae"].append(float(np.abs(rv - gv).mean()))
        out["psnr"].append(float(peak_signal_noise_ratio(rv, gv, data_range=data_range)))
        if win >= 3:
            _, ssim_map = structural_similarity(r, g, win_size=win, data_range=data_range, full=True)
            out["ssim"].append(float(ssim_map[brain].mean()))
        else:
            out["ssim"].append(float("nan"))
    return out


def period2_share(image: np.ndarray, brain: np.ndarray) -> float:
    """Power at the period-2 (Nyquist) frequency over the mean power of the upper half of the frequencies,
    averaged over the axes of the brain's bounding box that are at least 8 voxels long (NaN if none is)."""
    corners = bbox(brain)
    if corners is None:
        return float("nan")
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(*corners))
    x = np.asarray(image, np.float64)[box]
    x = x - x.mean()
    shares = []
    for axis, n in enumerate(x.shape):
        if n < 8:
            continue
        even = np.take(x, np.arange(n - n % 2), axis=axis)
        shape = [1] * x.ndim
        shape[axis] = even.shape[axis]
        window = np.hanning(even.shape[axis]).reshape(shape)  # the box's edges would leak into every frequency
        power = np.abs(np.fft.rfft(even * window, axis=axis)) ** 2
        power = power.mean(axis=tuple(a for a in range(x.ndim) if a != axis))  # the spectrum along this axis
        upper = power[len(power) // 2:].mean()
        if upper > 0:
            shares.append(power[-1] / upper)
    return float(np.mean(shares)) if shares else float("nan")


def class_means(image: np.ndarray, labelmap: np.ndarray, labels: dict[str, int]) -> dict[str, list[float]]:
    return {name: image[:, labelmap == k].mean(axis=1).tolist() for name, k in labels.items()
            if (labelmap == k).any()}


def lesion_contrast(image: np.ndarray, labelmap: np.ndarray, lesion: int, parenchyma: Sequence[int]
                    ) -> list[float] | None:
    """Per channel: mean(lesion) - mean(healthy parenchyma); None without a lesion."""
    les = labelmap == lesion
    healthy = np.isin(labelmap, list(parenchyma))
    if not les.any() or not healthy.any():
        return None
    return (image[:, les].mean(axis=1) - image[:, healthy].mean(axis=1)).tolist()


def _mean_sd(values: list[list[float]]) -> dict[str, list[float]]:
    arr = np.asarray(values, float)
    return {"mean": np.nanmean(arr, axis=0).tolist(), "sd": np.nanstd(arr, axis=0).tolist()}


def evaluate_renderer(renderer: Any, cases: Sequence[Any], labels: dict[str, int], lesion: int,
                      parenchyma: Sequence[int], background: int, seed: int = 0
                      ) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Metrics of one renderer over ``cases`` (TranslatorCase-like: case_id, image, labelmap); renders too."""
    per_case, renders, seconds = [], [], []
    contrast_real, contrast_gen = [], []
    class_err: dict[str, list[list[float]]] = {}
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        gen = renderer.render(case.labelmap, np.random.default_rng(seed + i))
        seconds.append(time.perf_counter() - t0)
        again = renderer.render(case.labelmap, np.random.default_rng(seed + 100_003 + i))
        brain = case.labelmap > background
        if not brain.any():
            brain = case.labelmap >= 0
        m = image_metrics(case.image, gen, brain)
        m["variety"] = [float(np.abs(gen[c][brain] - again[c][brain]).mean()) for c in range(gen.shape[0])]
        m["checkerboard"] = [period2_share(gen[c], brain) / max(period2_share(case.image[c], brain), 1e-12)
                             for c in range(gen.shape[0])]
        real_means, gen_means = class_means(case.image, case.labelmap, labels), class_means(gen, case.labelmap, labels)
        for name in real_means:
            class_err.setdefault(name, []).append([g - r for g, r in zip(gen_means[name], real_means[name])])
        cr = lesion_contrast(case.image, case.labelmap, lesion, parenchyma)
        if cr is not None:
            cg = lesion_contrast(gen, case.labelmap, lesion, parenchyma)
            contrast_real.append(cr)
            contrast_gen.append(cg)
            m["lesion_contrast"] = {"real": cr, "generated": cg}
        per_case.append({"case_id": case.case_id, **m})
        renders.append(gen)
    summary: dict[str, Any] = {k: _mean_sd([c[k] for c in per_case]) for k in
                               ("mae", "psnr", "ssim", "variety", "checkerboard")}
    summary["class_error"] = {
        name: {"signed": np.mean(errs, axis=0).tolist(), "absolute": np.mean(np.abs(errs), axis=0).tolist(),
               "cases": len(errs)} for name, errs in class_err.items()}
    if contrast_real:
        cr, cg = np.asarray(contrast_real), np.asarray(contrast_gen)
        summary["lesion_contrast"] = {"real": cr.mean(0).tolist(), "generated": cg.mean(0).tolist(),
                                      "abs_error": np.abs(cg - cr).mean(0).tolist(), "cases": len(cr)}
    summary["seconds_per_case"] = float(np.mean(seconds))
    return {"summary": summary, "per_case": per_case}, renders


# ---- the report ------------------------------------------------------------------------------------
def _fmt(values: Sequence[float], digits: int = 3) -> str:
    return " / ".join(f"{v:.{digits}g}" for v in values)


def markdown(report: dict[str, Any]) -> str:
    ch = report["channels"]
    chs = " / ".join(ch)
    lines = [f"# Translator report: {report['dataset']} fold {report['fold']}", "",
             f"{report['n_cases']} held-out (validation) cases, {report['n_lesion_cases']} with a lesion; "
             f"channels {chs}; values per channel ({chs}), in nnU-Net's normalized units. Metrics over the "
             "brain (label map > background), mean +/- sd over cases.", "",
             "| renderer | MAE | PSNR (dB) | SSIM | lesion contrast gen (real) | variety | checkerboard | s/case |",
             "|---|---|---|---|---|---|---|---|"]
    for name, res in report["renderers"].items():
        s = res["summary"]
        lc = s.get("lesion_contrast")
        contrast = f"{_fmt(lc['generated'], 2)} ({_fmt(lc['real'], 2)})" if lc else "n/a"
        cells = [" / ".join(f"{m:.3g}±{d:.2g}" for m, d in zip(s[k]["mean"], s[k]["sd"])) for k in
                 ("mae", "psnr", "ssim")]
        board = _fmt(s["checkerboard"]["mean"], 2) if "checkerboard" in s else "n/a"  # reports before the metric
        lines.append(f"| {name} | {' | '.join(cells)} | {contrast} | {_fmt(s['variety']['mean'], 2)} | {board} | "
                     f"{s['seconds_per_case']:.2f} |")
    lines += ["", "Checkerboard: period-2 power share of the generated image over the real one's, per channel "
              "(1 = as in the real scan; transposed convolutions raise it).", "",
              "## Mean intensity error per tissue class (generated - real; signed, absolute in brackets)", ""]
    classes = list(report["classes"])
    lines += ["| renderer | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for name, res in report["renderers"].items():
        ce = res["summary"]["class_error"]
        cells = [f"{_fmt(ce[c]['signed'], 2)} ({_fmt(ce[c]['absolute'], 2)})" if c in ce else "n/a" for c in classes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Checkpoints", ""]
    for name, info in report["checkpoints"].items():
        lines.append(f"- {name}: `{info['path']}` (step {info['step']})")
    lines += ["", f"Side-by-side slices: `{Path(report['files']['figure']).name}`.", ""]
    return "\n".join(lines)


def build_report(dataset_id: int, output: Path, checkpoints: Sequence[Path] | None = None, fold: str = "0",
                 plans: str | None = None, configuration: str | None = None, seed: int = 0,
                 device: str = "cpu", max_cases: int | None = None, include_gmm: bool = True,
                 figure_cases: int = 3) -> dict[str, Any]:
    """Render the fold's validation cases with every checkpoint (+ the Gaussian mixture); write JSON, markdown, PNG."""
    from nnsynth_gan.translator.data import anatomy_classes, load_cases
    from nnunet_synth.generators.checkpoint import load_checkpoint
    from nnunet_synth.generators.lookup import find_checkpoint
    from nnunet_synth.nnunet_io.folds import fold_case_ids
    from nnunet_synth.nnunet_io.preprocessed import DEFAULT_CONFIGURATION, DEFAULT_PLANS, open_preprocessed
    from nnunet_synth.renderers import GaussianMixtureRenderer
    from nnunet_synth.renderers.translator import TRANSLATOR_KINDS, TranslatorRenderer

    fold = str(fold)
    pre = open_preprocessed(dataset_id, plans or DEFAULT_PLANS, configuration or DEFAULT_CONFIGURATION)
    fp = pre.fingerprint
    classes = anatomy_classes(pre)
    if not checkpoints:
        checkpoints = []
        for kind in TRANSLATOR_KINDS:
            try:
                checkpoints.append(find_checkpoint(dataset_id, kind, fold))
            except NNSynthError:
                pass
        if not checkpoints:
            raise NNSynthError(f"no pix2pix or spade checkpoint for fold {fold} of {pre.name} (train one with "
                               "nnsynth train-translator, or pass --checkpoint)")
    train_ids, val_ids = fold_case_ids(pre, fold)
    if fold == "all":
        raise NNSynthError("fold 'all' has no held-out cases to report on; pick a cross-validation fold")
    if max_cases:
        val_ids = val_ids[:max_cases]
    renderers: dict[str, Any] = {}
    ckpt_info = {}
    for path in checkpoints:
        ckpt = load_checkpoint(path, fingerprint=fp)
        leaked = sorted(set(ckpt.extra.get("train_case_ids", [])) & set(val_ids))
        if leaked:
            raise NNSynthError(f"{path} was trained on {len(leaked)} of the report's held-out cases (e.g. "
                               f"{leaked[0]}): report on the fold it was trained for (--fold)")
        name = ckpt.kind if ckpt.kind not in renderers else f"{ckpt.kind}:{Path(path).stem}"
        renderers[name] = TranslatorRenderer.from_checkpoint(path, fp, device)
        ckpt_info[name] = {"path": str(path), "step": ckpt.step, "fold": ckpt.extra.get("fold")}
    val_cases = load_cases(pre, val_ids)
    if include_gmm:
        train_cases = load_cases(pre, train_ids)
        renderers[GMM_NAME] = GaussianMixtureRenderer.fit([(c.image, c.labelmap) for c in train_cases], seed=seed)
        del train_cases
    results, renders = {}, {}
    for name, renderer in renderers.items():
        results[name], renders[name] = evaluate_renderer(renderer, val_cases, classes.labels, classes.lesion,
                                                         classes.parenchyma, classes.background, seed)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    order = sorted(range(len(val_cases)), key=lambda i: -val_cases[i].lesion.size)[:figure_cases]
    rows = [(val_cases[i].case_id, val_cases[i].labelmap,
             {"real": val_cases[i].image, **{n: renders[n][i] for n in renderers}}) for i in order]
    figure = plot_translations(rows, output / "side_by_side.png",
                               f"{pre.name} fold {fold}: held-out label maps rendered", classes.lesion)
    report = {
        "dataset": pre.name, "fold": fold, "channels": list(fp.channel_names.values()),
        "classes": classes.labels, "n_cases": len(val_cases),
        "n_lesion_cases": sum(1 for c in val_cases if c.lesion.size), "case_ids": [str(c) for c in val_ids],
        "checkpoints": ckpt_info, "seed": seed,
        "renderers": results,
        "files": {"json": str(output / "report.json"), "markdown": str(output / "report.md"), "figure": str(figure)},
    }
    write_json_atomic(output / "report.json", report)
    write_text_atomic(output / "report.md", markdown(report))
    return report
