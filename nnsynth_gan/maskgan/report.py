"""Quality report of a mask GAN: generated lesion masks against the real masks it was trained on.

Real = the lesion masks of the fold's training cases (whole case, preprocessed space). Generated =
``--n`` whole cases made the way the synthesis engine makes them (``MaskSampler.sample_case``): the
anatomy of a random training case is the host, the number of lesions comes from the training cases,
each lesion is generated with a size from the training lesions and placed by the location prior within
parenchyma (grey/white matter when label maps exist, else nnU-Net's nonzero mask). The share of
generated voxels inside the brain is measured *before* voxels outside the brain are cut, so it reflects
shape and placement, not the cut. Per-lesion volumes are compared as well as per-case ones.

Tissue classes come from ``$nnUNet_raw/DatasetXXX/labelmapsTr/<case><file_ending>`` (names in
dataset.json ``anatomical_labels``), brought into preprocessed space with nnU-Net's own transpose,
crop and segmentation resampling. Label maps mark the lesion itself as a class, so the tissue under a
lesion is taken from a "healthy" map in which lesion voxels get the label of the nearest non-lesion
voxel; the same healthy maps host the generated lesions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cc3d
import numpy as np
from scipy import stats

from nnsynth_gan.maskgan.data import iter_segmentations
from nnsynth_gan.plots import plot_mask_mosaic, plot_occupancy
from nnunet_synth.generators.checkpoint import load_checkpoint
from nnunet_synth.generators.lookup import find_checkpoint
from nnunet_synth.lesions.geometry import bbox
from nnunet_synth.lesions.maskgan import MaskSampler, as_rng, relative_volume_error
from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic
from nnunet_synth.nnunet_io.folders import find_dataset
from nnunet_synth.nnunet_io.folds import fold_case_ids
from nnunet_synth.nnunet_io.labelmap_grid import preprocessed_labelmaps
from nnunet_synth.nnunet_io.preprocessed import (
    DEFAULT_CONFIGURATION,
    DEFAULT_PLANS,
    PreprocessedDataset,
    open_preprocessed,
)
from nnunet_synth.synthesis.anatomy import AnatomyClasses, healthy_map

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
OCCUPANCY_GRID = 32


@dataclass
class Host:
    """One training case's anatomy in preprocessed space."""

    case_id: str
    lesion: np.ndarray
    brain: np.ndarray
    parenchyma: np.ndarray
    healthy: np.ndarray | None  # tissue label map with the lesion class filled in, or None


def components(mask: np.ndarray) -> int:
    return int(cc3d.connected_components(mask.astype(np.uint8), connectivity=26).max()) if mask.any() else 0


def load_hosts(pre: PreprocessedDataset, case_ids: list[str]) -> tuple[list[Host], dict[str, int] | None]:
    raw = find_dataset(pre.dataset_id, "nnUNet_raw")
    tissue = pre.dataset_json.get("anatomical_labels")
    labelmaps = preprocessed_labelmaps(pre, list(case_ids), missing_ok=True) if tissue and raw else {}
    classes = AnatomyClasses.from_dataset_json(pre.dataset_json) if tissue else None
    hosts = []
    for case_id, seg, _ in iter_segmentations(pre, case_ids):
        lesion = seg > 0
        if classes is not None and case_id in labelmaps:
            healthy = healthy_map(labelmaps[case_id][0], classes.lesion)
            brain = healthy > classes.background
            parenchyma = np.isin(healthy, classes.parenchyma) if classes.parenchyma else brain
            hosts.append(Host(case_id, lesion, brain, parenchyma, healthy))
        else:
            hosts.append(Host(case_id, lesion, seg >= 0, seg >= 0, None))
    if tissue and any(h.healthy is None for h in hosts):
        missing = [h.case_id for h in hosts if h.healthy is None]
        print(f"note: no label map for {len(missing)} case(s) (e.g. {missing[0]}); brain = nonzero mask there")
    usable = tissue if any(h.healthy is not None for h in hosts) else None
    return hosts, usable


def occupancy(masks_and_brains: list[tuple[np.ndarray, np.ndarray]], grid: int = OCCUPANCY_GRID) -> np.ndarray:
    """Share of cases with lesion in each cell of a grid over the normalized brain bounding box."""
    occ = np.zeros((grid,) * 3)
    for mask, brain in masks_and_brains:
        pts = np.argwhere(mask)
        box = bbox(brain)
        if len(pts) == 0 or box is None:
            continue
        lo, hi = box
        u = (pts - lo) / np.maximum(hi - lo, 1)
        cells = np.clip((u * grid).astype(int), 0, grid - 1)
        hit = np.zeros_like(occ, bool)
        hit[tuple(cells.T)] = True
        occ += hit
    return occ / max(len(masks_and_brains), 1)


def tissue_shares(mask: np.ndarray, labels: np.ndarray | None, tissue: dict[str, int] | None) -> dict[str, float]:
    n = int(mask.sum())
    if labels is None or not tissue or n == 0:
        return {}
    values = labels[mask]
    return {name: float((values == v).sum() / n) for name, v in tissue.items() if name != "lesion"}


def summary(values: list[float] | np.ndarray) -> dict[str, float]:
    v = np.asarray(values, float)
    if len(v) == 0:
        return {}
    out = {f"q{int(q * 100):02d}": float(np.quantile(v, q)) for q in QUANTILES}
    out["mean"] = float(v.mean())
    return out


def ks(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> dict[str, float]:
    res = stats.ks_2samp(np.asarray(a, float), np.asarray(b, float))
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}


def mean_dict(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: float(np.mean([r.get(k, 0.0) for r in rows])) for k in keys} if rows else {}


def volume_accuracy(sampler: MaskSampler, rng: np.random.Generator, per_request: int) -> dict[str, Any]:
    """Ask for the 10/25/50/75/90 % training volumes and measure |obtained - requested| / requested."""
    train = np.exp(sampler.train_log_volumes)
    requests = np.quantile(train, [0.1, 0.25, 0.5, 0.75, 0.9])
    rows, all_err = [], []
    for v in requests:
        masks = sampler.sample(per_request, volume_ml=float(v), seed=rng)
        err = relative_volume_error(masks, np.full(per_request, v), sampler.config.voxel_ml)
        got = [m.sum() * sampler.config.voxel_ml for m in masks]
        rows.append({"requested_ml": float(v), "median_obtained_ml": float(np.median(got)),
                     "median_relative_error": float(np.median(err))})
        all_err.extend(err.tolist())
    return {"per_request": rows, "median_relative_error": float(np.median(all_err)),
            "masks_per_request": per_request}


def build_report(dataset_id: int, n: int, out_dir: Path, fold: str = "0", checkpoint: Path | None = None,
                 plans: str = DEFAULT_PLANS, configuration: str = DEFAULT_CONFIGURATION, seed: int = 0,
                 device: str = "cpu", match_volume: bool = True) -> dict[str, Any]:
    """Write report.json, report.md, occupancy.png and generated_examples.png to ``out_dir``.

    ``match_volume=False`` thresholds the generator's output at 0 (the condition alone, as before the
    volume-matched threshold)."""
    pre = open_preprocessed(dataset_id, plans, configuration)
    fp = pre.fingerprint
    path = checkpoint or find_checkpoint(dataset_id, "maskgan", fold)
    ckpt = load_checkpoint(path, kind="maskgan", fingerprint=fp)
    sampler = MaskSampler.from_checkpoint(path, fp, device)
    sampler.match_volume = match_volume
    voxel_ml = sampler.config.voxel_ml
    ckpt_fold = str(ckpt.extra.get("fold", fold))
    train_ids, _ = fold_case_ids(pre, ckpt_fold)
    hosts, tissue = load_hosts(pre, train_ids)
    real = [h for h in hosts if h.lesion.any()]
    rng = as_rng(seed)

    real_vol = [float(h.lesion.sum()) * voxel_ml for h in real]
    real_cc = [components(h.lesion) for h in real]
    real_inside = [float((h.lesion & h.brain).sum() / h.lesion.sum()) for h in real]
    real_tissue = [tissue_shares(h.lesion, h.healthy, tissue) for h in real]
    real_lesion_vol = np.exp(sampler.train_log_volumes)  # training lesions as the GAN saw them (in box)

    cases = []
    for _ in range(n):
        host = hosts[int(rng.integers(len(hosts)))]
        cases.append((sampler.sample_case(host.brain, host.parenchyma, rng), host))
    gen_vol = [float(c.mask.sum()) * voxel_ml for c, _ in cases]
    gen_cc = [components(c.mask) for c, _ in cases]
    gen_inside = [c.inside_brain for c, _ in cases if any(b.any() for b in c.boxes)]
    gen_tissue = [tissue_shares(c.mask, h.healthy, tissue) for c, h in cases]
    boxes = [b for c, _ in cases for b in c.boxes]
    requested = np.concatenate([c.requested_ml for c, _ in cases])
    gen_lesion_vol = [float(b.sum()) * voxel_ml for b in boxes]

    occ_real = occupancy([(h.lesion, h.brain) for h in real])
    occ_gen = occupancy([(c.mask, h.brain) for c, h in cases])
    occ_corr = float(np.corrcoef(occ_real.ravel(), occ_gen.ravel())[0, 1]) if occ_gen.any() else float("nan")
    vol_acc = volume_accuracy(sampler, rng, max(10, n // 5))
    cond_err = relative_volume_error(boxes, requested, voxel_ml)

    out_dir.mkdir(parents=True, exist_ok=True)
    occ_png = plot_occupancy({"real (training)": occ_real, "generated (placed)": occ_gen},
                             out_dir / "occupancy.png",
                             f"lesion occupancy in the normalized brain box, {pre.name} fold {ckpt_fold}")
    order = np.argsort(gen_lesion_vol)
    picks = order[np.linspace(0, len(order) - 1, min(10, len(order))).round().astype(int)]
    examples_png = plot_mask_mosaic(
        [("generated", [boxes[i] for i in picks], [f"{gen_lesion_vol[i]:.2g} ml" for i in picks])],
        out_dir / "generated_examples.png", "generated lesion boxes (max projection), sorted by volume")

    report: dict[str, Any] = {
        "dataset": pre.name, "fold": ckpt_fold, "checkpoint": str(path), "checkpoint_step": ckpt.step,
        "box_shape": list(sampler.box_shape), "spacing_mm": list(sampler.config.spacing),
        "box_coverage_of_training_lesion_voxels": ckpt.extra.get("box_coverage"),
        "n_real_cases": len(real), "n_real_lesions": len(real_lesion_vol), "n_generated_cases": n,
        "n_generated_lesions": len(boxes), "n_generated_empty_lesions": int(sum(1 for b in boxes if not b.any())),
        "seed": seed,
        "case_volume_ml": {"real": summary(real_vol), "generated": summary(gen_vol), "ks": ks(gen_vol, real_vol)},
        "lesion_volume_ml": {"real_in_box": summary(real_lesion_vol), "generated": summary(gen_lesion_vol),
                             "ks": ks(gen_lesion_vol, real_lesion_vol)},
        "components_per_case": {"real": summary(real_cc), "generated": summary(gen_cc),
                                "ks": ks(gen_cc, real_cc), "connectivity": 26},
        "lesions_per_case_prior": [int(x) for x in sampler.lesions_per_case],
        "inside_brain_share": {"real": summary(real_inside), "generated_placed": summary(gen_inside),
                               "brain_definition": "label map > 0" if tissue else "nnU-Net nonzero mask"},
        "tissue_share": {"real": mean_dict([t for t in real_tissue if t]),
                         "generated_placed": mean_dict([t for t in gen_tissue if t]),
                         "classes": tissue or {}},
        "occupancy_correlation": occ_corr,
        "volume_conditioning": {**vol_acc, "volume_matched_threshold": match_volume,
                                "sampled_sizes_median_relative_error": float(np.median(cond_err))},
        "placement": "each generated case takes a random training case's anatomy as host, draws its number of "
                     "lesions from the training cases, and places each generated lesion with the location "
                     "prior (training lesion centres in the normalized brain box, drawn jointly with the size, "
                     "jitter 0.03) restricted to parenchyma; the inside-brain share is measured before voxels "
                     "outside the brain are cut, volumes and components after",
        "files": {"occupancy_png": str(occ_png), "examples_png": str(examples_png),
                  "json": str(out_dir / "report.json"), "markdown": str(out_dir / "report.md")},
    }
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "report.md", markdown(report))
    return report


def _row(name: str, s: dict[str, float], fmt: str = "{:.3g}") -> str:
    cells = [fmt.format(s[k]) if k in s else "-" for k in ("q05", "q25", "q50", "q75", "q95", "mean")]
    return f"| {name} | " + " | ".join(cells) + " |"


def markdown(r: dict[str, Any]) -> str:
    head = "| | q05 | q25 | median | q75 | q95 | mean |\n|---|---|---|---|---|---|---|"
    cv, lv, c, b = r["case_volume_ml"], r["lesion_volume_ml"], r["components_per_case"], r["inside_brain_share"]

    def ks_line(k: dict[str, float]) -> str:
        return f"two-sample KS D = {k['statistic']:.3f} (p = {k['pvalue']:.3g})"

    lines = [
        f"# Mask GAN report: {r['dataset']} fold {r['fold']}",
        "",
        f"Checkpoint `{r['checkpoint']}` (step {r['checkpoint_step']}), lesion box {r['box_shape']} voxels at "
        f"{r['spacing_mm']} mm; the boxes keep {100 * (r['box_coverage_of_training_lesion_voxels'] or 0):.1f}% "
        f"of the training lesion voxels. Real: {r['n_real_cases']} training cases with {r['n_real_lesions']} "
        f"lesions. Generated: {r['n_generated_cases']} cases with {r['n_generated_lesions']} lesions "
        f"({r['n_generated_empty_lesions']} empty), seed {r['seed']}.",
        "",
        "## Lesion volume per case (ml)",
        head, _row("real", cv["real"]), _row("generated", cv["generated"]), "", ks_line(cv["ks"]) + ".",
        "",
        "## Volume per lesion (ml; real = training lesions as cut to the box)",
        head, _row("real", lv["real_in_box"]), _row("generated", lv["generated"]), "", ks_line(lv["ks"]) + ".",
        "",
        "## Connected components per case (26-connectivity)",
        head, _row("real", c["real"]), _row("generated", c["generated"]), "", ks_line(c["ks"]) + ".",
        "",
        f"## Share of lesion voxels inside the brain ({b['brain_definition']})",
        head, _row("real", b["real"]), _row("generated (placed, before the cut)", b["generated_placed"]),
        "",
    ]
    t = r["tissue_share"]
    if t["classes"]:
        names = [k for k in t["classes"] if k != "lesion"]
        lines += ["## Mean share of lesion voxels per tissue class", "",
                  "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for key, label in (("real", "real"), ("generated_placed", "generated (placed)")):
            lines.append(f"| {label} | " + " | ".join(f"{t[key].get(k, 0):.3f}" for k in names) + " |")
        lines += ["", "Tissue under a lesion = healthy label map (lesion voxels filled with the nearest "
                  "non-lesion label).", ""]
    else:
        lines += ["No anatomical label maps (labelmapsTr + anatomical_labels): tissue shares not computed.", ""]
    vc = r["volume_conditioning"]
    occ = r["occupancy_correlation"]
    lines += [
        "## Occupancy",
        "",
        f"Pearson correlation of the real and generated occupancy maps ({OCCUPANCY_GRID}^3 grid over the "
        f"normalized brain box): {occ:.3f}. See `occupancy.png`." if occ is not None and math.isfinite(occ)
        else "No generated lesion voxels: occupancy not compared.",
        "",
        "## Volume conditioning",
        "",
        f"Median relative volume error over all requests: **{vc['median_relative_error']:.3f}** "
        f"({vc['masks_per_request']} lesions per requested volume); for the sizes drawn from the training "
        f"lesions above: {vc['sampled_sizes_median_relative_error']:.3f}. Threshold: "
        + ("moved to the requested volume (`MaskSampler.match_volume`)." if vc.get("volume_matched_threshold", True)
           else "0 (the generator's volume condition alone, `--threshold-at-zero`)."),
        "",
        "| requested ml | median obtained ml | median relative error |", "|---|---|---|",
    ]
    lines += [f"| {x['requested_ml']:.3g} | {x['median_obtained_ml']:.3g} | {x['median_relative_error']:.3f} |"
              for x in vc["per_request"]]
    lines += ["", "## Placement", "", r["placement"] + ".", ""]
    return "\n".join(lines)
