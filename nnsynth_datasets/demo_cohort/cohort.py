"""The offline demo stroke cohort: synthetic DWI/ADC subjects built from the MNI152 2009 template.

No stroke cohort can be downloaded on these machines, yet every part of the pipeline (converters,
GAN training, the synth trainer, the experiment runner) needs a realistic raw dataset to run on.
This module writes one in nnU-Net's raw format, with an anatomical label map per case (the input
of the label-map -> image translators) and a JSON of per-subject facts. Each subject draws from its
own RNG seeded by (seed, subject index), so any number of worker processes gives identical files.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from nnsynth_datasets.demo_cohort.anatomy import (
    CSF,
    LESION,
    Spacing,
    load_template,
    random_geometry,
    sample_anatomy,
    subject_grid,
)
from nnsynth_datasets.demo_cohort.contrast import TissueChange, random_contrast, render
from nnsynth_datasets.demo_cohort.lesions import (
    LESION_FREE_SHARE,
    TERRITORIES,
    Placement,
    Region,
    plan_confounders,
    plan_infarcts,
    rasterise,
)
from nnsynth_datasets.raw_dataset import ANATOMICAL_LABELS, FILE_ENDING, staged_dataset, write_dataset_json
from nnsynth_datasets.workers import die_with_parent
from nnunet_synth import __version__
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic
from nnunet_synth.nnunet_io.folders import check_name, dataset_folder_name, env_dir

CHANNELS = {0: "DWI", 1: "ADC"}
LABELS = {"background": 0, "lesion": 1}
SPLIT_FOLDERS = {"train": ("imagesTr", "labelsTr", "labelmapsTr"),
                 "test": ("imagesTs", "labelsTs", "labelmapsTs")}
FACTS_FILE = "demo_cohort.json"
PREVIEW_FILE = "demo_cohort_preview.png"
SPACING_RANGE_MM = (0.5, 10.0)
SHORT_NAMES = {"t2_shine_through": "T2 shine-through", "chronic_infarct": "chronic",
               "susceptibility_artifact": "susceptibility"}
# Out-of-domain test sets: the test subjects again (same anatomy and lesions), acquired another way;
# written to test_<variant>/{imagesTs,labelsTs,labelmapsTs} of the same dataset.
VARIANTS = {
    "scanner-b": {"scanner": "scanner-b", "slice_factor": 1.0,
                  "about": "another site's scanner: other grey/white-matter contrast, gain, lower SNR, stronger bias"},
    "thick-slice": {"scanner": "default", "slice_factor": 2.0,
                    "about": "a thick-slice protocol: slices twice as thick as the training spacing (anisotropic)"},
}
TEMPLATE_REFERENCE = ("MNI ICBM152 2009 nonlinear symmetric template and tissue maps (Fonov et al., "
                      "NeuroImage 2011), as shipped with nilearn")


@dataclass
class Subject:
    """One simulated subject: images, label maps and the facts recorded in demo_cohort.json."""

    dwi: np.ndarray
    adc: np.ndarray
    labelmap: np.ndarray  # uint8, ANATOMICAL_LABELS with the infarcts as LESION
    healthy_labels: np.ndarray  # uint8, the label map before infarcts and chronic lesions
    fractions: np.ndarray  # (3, ...) float32 CSF, GM, WM partial volumes of the healthy anatomy
    affine: np.ndarray
    facts: dict = field(default_factory=dict)

    @property
    def lesion(self) -> np.ndarray:
        return (self.labelmap == LESION).astype(np.uint8)


def _round(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


def _region_facts(plan: Placement, region: Region, voxel_ml: float) -> dict:
    return {"kind": plan.kind, "territory": plan.territory, "hemisphere": plan.hemisphere,
            "volume_ml": _round(region.voxels * voxel_ml), "target_volume_ml": _round(plan.volume_ml),
            "center_mni_mm": np.round(plan.center, 1).tolist(),
            "adc_factor": _round(plan.adc_factor), "s0_factor": _round(plan.s0_factor)}


def _measured_contrast(facts: dict, region: Region, dwi: np.ndarray, adc: np.ndarray,
                       healthy: np.ndarray, normal: np.ndarray) -> None:
    """Mean image ratio region / normal tissue of the same classes: what the model has to see."""
    if region.voxels == 0:
        return
    classes = healthy[region.crop][region.selected]
    for name, image in (("dwi_ratio", dwi), ("adc_ratio", adc)):
        reference = [(np.sum(classes == k), image[normal & (healthy == k)].mean())
                     for k in np.unique(classes) if (normal & (healthy == k)).any()]
        if reference:
            weights, means = np.array(reference).T
            facts[name] = _round(image[region.crop][region.selected].mean() / np.average(means, weights=weights))


def simulate_subject(index: int, seed: int, spacing: Spacing, lesion_free: bool,
                     scanner: str = "default") -> Subject:
    """Everything about subject `index` follows from np.random.default_rng([seed, index]); ``scanner``
    changes only how it is imaged (anatomy and lesions are drawn first, the same for every scanner)."""
    rng = np.random.default_rng([seed, index])
    template = load_template(tuple(float(s) for s in spacing))
    geometry, anatomy_facts = random_geometry(rng, template)
    anatomy = sample_anatomy(template, geometry, subject_grid(geometry, template, spacing))
    voxel_ml = anatomy.grid.voxel_ml
    infarcts = plan_infarcts(rng, template, lesion_free)
    confounders = plan_confounders(rng, template)
    contrast = random_contrast(rng, scanner)

    labelmap = anatomy.labels.copy()
    lesion = np.zeros(labelmap.shape, dtype=bool)
    changes: list[TissueChange] = []
    gains: list[tuple[Region, float]] = []
    placed: list[tuple[dict, Region]] = []
    for plan in infarcts:
        region = rasterise(rng, anatomy, plan, lesion, TERRITORIES[plan.territory])
        if region is None or region.voxels == 0:
            continue
        lesion[region.crop] |= region.selected
        changes.append(TissueChange(region, plan.adc_factor, plan.s0_factor))
        placed.append((_region_facts(plan, region, voxel_ml), region))
    confounder_mask = np.zeros(labelmap.shape, dtype=bool)
    for plan in confounders:
        if plan.kind == "susceptibility_artifact":
            region = rasterise(rng, anatomy, plan, None, None)
            if region is not None:
                gains.append((region, plan.s0_factor))
        else:
            region = rasterise(rng, anatomy, plan, lesion, TERRITORIES.get(plan.territory))
            if region is not None:
                changes.append(TissueChange(region, plan.adc_factor, plan.s0_factor))
                if plan.kind == "chronic_infarct":  # a tissue segmenter calls a cavity CSF
                    labelmap[region.crop][region.selected] = CSF
        if region is not None and region.voxels:
            confounder_mask[region.crop] |= region.weight > 0.1
            placed.append((_region_facts(plan, region, voxel_ml), region))
    labelmap[lesion] = LESION

    dwi, adc = render(rng, anatomy, contrast, changes, gains)
    normal = ~lesion & ~confounder_mask
    for facts, region in placed:
        _measured_contrast(facts, region, dwi, adc, anatomy.labels, normal)
    lesions = [f for f, _ in placed if f["kind"] == "infarct"]
    _, components = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
    facts = {
        "index": index, "lesion_free": not lesions, "lesion_count": len(lesions),
        "lesion_components": int(components),
        "lesion_volume_ml": _round(lesion.sum() * voxel_ml),
        "lesion_volumes_ml": [f["volume_ml"] for f in lesions],
        "territories": sorted({f["territory"] for f in lesions}),
        "lesions": lesions,
        "confounder_count": len(placed) - len(lesions),
        "confounders": [f for f, _ in placed if f["kind"] != "infarct"],
        "contrast": contrast.facts(), "anatomy": anatomy_facts,
        "shape": list(anatomy.grid.shape), "spacing_mm": list(anatomy.grid.spacing),
    }
    return Subject(dwi=dwi, adc=adc, labelmap=labelmap, healthy_labels=anatomy.labels,
                   fractions=anatomy.fractions, affine=anatomy.grid.affine, facts=facts)


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))


def write_subject(subject: Subject, folder: Path, case_id: str, split: str) -> None:
    images, labels, labelmaps = SPLIT_FOLDERS[split]
    _save(subject.dwi, subject.affine, folder / images / f"{case_id}_0000{FILE_ENDING}")
    _save(subject.adc, subject.affine, folder / images / f"{case_id}_0001{FILE_ENDING}")
    _save(subject.lesion, subject.affine, folder / labels / f"{case_id}{FILE_ENDING}")
    _save(subject.labelmap, subject.affine, folder / labelmaps / f"{case_id}{FILE_ENDING}")


def _preview_slices(subject: Subject) -> dict:
    """An axial slice through the biggest lesion (else a confounder, else mid-brain)."""
    lesion_area = (subject.labelmap == LESION).sum(axis=(0, 1))
    changed_area = (subject.labelmap != subject.healthy_labels).sum(axis=(0, 1))
    brain_z = np.flatnonzero(subject.labelmap.any(axis=(0, 1)))
    if lesion_area.any():
        z = int(np.argmax(lesion_area))
    elif changed_area.any():
        z = int(np.argmax(changed_area))
    else:
        z = int(brain_z[int(len(brain_z) * 0.6)]) if brain_z.size else subject.labelmap.shape[2] // 2
    return {"dwi": subject.dwi[:, :, z], "adc": subject.adc[:, :, z],
            "labelmap": subject.labelmap[:, :, z], "z": z}


@dataclass(frozen=True)
class Job:
    index: int
    case_id: str
    split: str
    lesion_free: bool
    seed: int
    spacing: Spacing
    folder: Path
    scanner: str = "default"


def _run_job(job: Job) -> tuple[dict, dict]:
    subject = simulate_subject(job.index, job.seed, job.spacing, job.lesion_free, job.scanner)
    write_subject(subject, job.folder, job.case_id, job.split)
    facts = {"case": job.case_id, "split": job.split, **subject.facts}
    return facts, {"case": job.case_id, **_preview_slices(subject)}


def plan_cohort(subjects: int, seed: int, test_fraction: float) -> list[tuple[int, str, bool]]:
    """(index, split, lesion_free) per subject: a fixed lesion-free share, split stratified by it."""
    rng = np.random.default_rng([seed, 2 ** 32 - 1])
    n_free = int(round(subjects * LESION_FREE_SHARE))
    free = sorted(rng.choice(subjects, n_free, replace=False).tolist())
    with_lesion = sorted(set(range(subjects)) - set(free))
    n_test = int(round(subjects * test_fraction))
    if test_fraction > 0:
        n_test = min(max(n_test, 1), subjects - 1)
    n_test_lesion = min(n_test - min(int(round(n_test * n_free / subjects)), n_free), len(with_lesion))
    test = set(rng.choice(free, n_test - n_test_lesion, replace=False).tolist())
    test |= set(rng.choice(with_lesion, n_test_lesion, replace=False).tolist())
    return [(i, "test" if i in test else "train", i in free) for i in range(subjects)]


def check_arguments(dataset_id: int, subjects: int, seed: int, spacing: float | tuple | list,
                    test_fraction: float, name: str, num_processes: int) -> Spacing:
    """Refuse bad arguments up front (as NNSynthError, naming the argument); returns the spacing."""
    if not 1 <= int(dataset_id) <= 999:
        raise NNSynthError(f"--dataset-id must be between 1 and 999 (got {dataset_id})")
    if int(subjects) < 2:
        raise NNSynthError(f"--subjects must be at least 2 (got {subjects})")
    if int(seed) < 0:
        raise NNSynthError(f"--seed must be a non-negative integer (got {seed})")
    values = [float(spacing)] * 3 if np.isscalar(spacing) else [float(s) for s in spacing]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise NNSynthError(f"--spacing takes one value or three (got {len(values)})")
    lo, hi = SPACING_RANGE_MM
    if not all(np.isfinite(v) and lo <= v <= hi for v in values):
        raise NNSynthError(f"--spacing must be between {lo} and {hi} mm (got {values})")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise NNSynthError(f"--test-fraction must be in [0, 1) (got {test_fraction})")
    check_name(name, "--name")
    if int(num_processes) < 1:
        raise NNSynthError(f"-np must be at least 1 (got {num_processes})")
    return tuple(values)


def _init_worker(parent: int, spacing) -> None:
    die_with_parent(parent)
    load_template(spacing)


def _simulate_all(jobs: list[Job], num_processes: int, progress: bool) -> tuple[list[dict], list[dict]]:
    bar = dict(total=len(jobs), desc="demo cohort", unit="subject", disable=not progress)
    if num_processes == 1:
        results = [_run_job(job) for job in tqdm(jobs, **bar)]
    else:
        with multiprocessing.get_context("spawn").Pool(num_processes, initializer=_init_worker,
                                  initargs=(os.getpid(), jobs[0].spacing)) as pool:
            results = list(tqdm(pool.imap(_run_job, jobs), **bar))
    return [r[0] for r in results], [r[1] for r in results]


def variant_jobs(jobs: list[Job], variants: list[str], root: Path) -> list[Job]:
    """The test subjects again, once per acquisition variant, into root/test_<variant>/."""
    out = []
    for variant in variants:
        spec = VARIANTS[variant]
        base = jobs[0].spacing
        spacing = (base[0], base[1], base[2] * spec["slice_factor"])
        for job in jobs:
            if job.split == "test":
                out.append(Job(job.index, job.case_id, "test", job.lesion_free, job.seed, spacing,
                               root / f"test_{variant}", spec["scanner"]))
    return out


def make_demo_cohort(dataset_id: int, subjects: int = 40, seed: int = 0,
                     spacing: float | tuple | list = (3.0, 3.0, 3.0), test_fraction: float = 0.25,
                     name: str = "NNSynthDemo", overwrite: bool = False, num_processes: int = 1,
                     progress: bool = True, variants: list[str] | tuple[str, ...] = ()) -> Path:
    """Write $nnUNet_raw/DatasetXXX_<name> atomically and return its path.

    ``variants``: out-of-domain test sets (``VARIANTS``) of the same test subjects, in test_<variant>/.
    """
    spacing = check_arguments(dataset_id, subjects, seed, spacing, test_fraction, name, num_processes)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise NNSynthError(f"--variants {' '.join(unknown)}: unknown (choose from {', '.join(VARIANTS)})")
    if variants and test_fraction <= 0:
        raise NNSynthError("--variants re-image the test subjects: give a --test-fraction above 0")
    width = max(3, len(str(subjects - 1)))
    plan = plan_cohort(subjects, seed, test_fraction)
    with staged_dataset(dataset_id, name, overwrite) as tmp:
        for folders in SPLIT_FOLDERS.values():
            for sub in folders:
                (tmp / sub).mkdir()
        load_template(spacing)  # once in the parent: forked workers inherit it
        jobs = [Job(i, f"demo_{i:0{width}d}", split, free, seed, spacing, tmp) for i, split, free in plan]
        cases, previews = _simulate_all(jobs, min(num_processes, subjects), progress)
        extra = variant_jobs(jobs, list(variants), tmp)
        for variant in variants:
            for sub in SPLIT_FOLDERS["test"]:
                (tmp / f"test_{variant}" / sub).mkdir(parents=True)
        variant_cases = _simulate_all(extra, min(num_processes, len(extra)), progress)[0] if extra else []
        cohort = _cohort_facts(cases, seed, spacing, test_fraction)
        cohort["variants"] = {v: {**VARIANTS[v], "folder": f"test_{v}",
                                  "cases": [c for c, j in zip(variant_cases, extra) if j.folder.name == f"test_{v}"]}
                              for v in variants}
        _write_dataset_json(tmp, cohort, dataset_folder_name(dataset_id, name))
        write_json_atomic(tmp / FACTS_FILE, cohort)
        write_preview(tmp / PREVIEW_FILE, previews, cases, spacing)
    return env_dir("nnUNet_raw") / dataset_folder_name(dataset_id, name)


def _cohort_facts(cases: list[dict], seed: int, spacing: Spacing, test_fraction: float) -> dict:
    return {"generator": f"nnsynth demo-cohort {__version__}", "seed": seed, "spacing_mm": list(spacing),
            "test_fraction": test_fraction, "num_subjects": len(cases),
            "num_training": sum(c["split"] == "train" for c in cases),
            "num_test": sum(c["split"] == "test" for c in cases),
            "num_lesion_free": sum(c["lesion_free"] for c in cases),
            "template": TEMPLATE_REFERENCE, "cases": cases}


def _write_dataset_json(folder: Path, cohort: dict, dataset_name: str) -> None:
    spacing = "x".join(f"{s:g}" for s in cohort["spacing_mm"])
    description = (f"Synthetic acute-stroke DWI/ADC cohort made offline by `nnsynth demo-cohort` "
                   f"(seed {cohort['seed']}, spacing {spacing} mm, {cohort['num_subjects']} subjects): "
                   "warped MNI152 anatomy, 0-3 territorial/lacunar infarcts per subject, T2 "
                   "shine-through, chronic infarcts and susceptibility artefacts as unlabelled "
                   "confounders. labelmapsTr/Ts hold the anatomical label maps (anatomical_labels).")
    write_dataset_json(folder, CHANNELS, cohort["num_training"], LABELS, dataset_name=dataset_name,
                       extra={"anatomical_labels": dict(ANATOMICAL_LABELS), "description": description,
                              "reference": f"{TEMPLATE_REFERENCE}; nnsynth demo-cohort seed="
                                           f"{cohort['seed']} spacing={spacing} mm",
                              "numTest": cohort["num_test"],
                              # lets the embedded default generators recognise a demo cohort
                              "nnsynth_demo_cohort": {"seed": cohort["seed"], "spacing_mm": cohort["spacing_mm"],
                                                      "subjects": cohort["num_subjects"]}})


def summarize(cohort: dict) -> str:
    """Human-readable summary printed at the end of the command."""
    volumes = np.array([c["lesion_volume_ml"] for c in cohort["cases"] if not c["lesion_free"]])
    lines = [f"subjects: {cohort['num_subjects']} (train {cohort['num_training']}, "
             f"test {cohort['num_test']}), lesion-free: {cohort['num_lesion_free']}"]
    if volumes.size:
        q = np.quantile(volumes, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
        lines.append("lesion volume per subject (ml): " + ", ".join(
            f"{name} {v:.2f}" for name, v in zip(("min", "p10", "p25", "median", "p75", "p90", "max"), q)))
    counts = np.bincount([c["lesion_count"] for c in cohort["cases"]], minlength=4)
    lines.append("infarcts per subject: " + ", ".join(f"{k}: {n}" for k, n in enumerate(counts)))
    lines.append(f"confounders: {sum(c['confounder_count'] for c in cohort['cases'])}")
    return "\n".join(lines)


def _preview_rows(cases: list[dict], rows: int = 5) -> list[int]:
    """Subjects spanning the lesion volumes, plus one lesion-free subject when there is one."""
    with_lesion = sorted((c["lesion_volume_ml"], i) for i, c in enumerate(cases) if not c["lesion_free"])
    free = [i for i, c in enumerate(cases) if c["lesion_free"]]
    n_lesion = min(len(with_lesion), rows - (1 if free else 0))
    picks = [with_lesion[int(round(k))][1] for k in np.linspace(0, len(with_lesion) - 1, n_lesion)] \
        if n_lesion else []
    picks = list(dict.fromkeys(picks))
    return picks + free[: rows - len(picks)]


def write_preview(path: Path, previews: list[dict], cases: list[dict], spacing: Spacing) -> None:
    """PNG mosaic for a person to check the cohort: DWI, ADC, DWI with the lesion outline, label map."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    picks = _preview_rows(cases)
    colours = ListedColormap(["black", "#3b6fb6", "#9a9a9a", "#f2f2f2", "#e0301e"])
    fig = Figure(figsize=(10, 2.6 * len(picks) + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(picks), 4, squeeze=False)
    aspect = spacing[1] / spacing[0]
    for row, i in enumerate(picks):
        p, c = previews[i], cases[i]
        lesion = (p["labelmap"] == LESION).T
        dwi_max = float(np.percentile(p["dwi"][p["labelmap"] > 0], 99.5)) if (p["labelmap"] > 0).any() else 1
        panels = [(p["dwi"], "gray", 0, dwi_max, "DWI b1000"), (p["adc"], "gray", 0, 3500, "ADC"),
                  (p["dwi"], "gray", 0, dwi_max, "DWI + lesion outline"),
                  (p["labelmap"], colours, -0.5, 4.5, "label map (CSF/GM/WM/lesion)")]
        for col, (image, cmap, vmin, vmax, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image.T, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", aspect=aspect,
                      interpolation="nearest")
            if col >= 2 and lesion.any():
                ax.contour(lesion, levels=[0.5], colors="#ffd400" if col == 3 else "red", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
        kinds = ", ".join(sorted({SHORT_NAMES[f["kind"]] for f in c["confounders"]})) or "none"
        axes[row, 0].set_ylabel(f"{c['case']} ({c['split']}), z={p['z']}\n"
                                f"{c['lesion_count']} infarct(s), {c['lesion_volume_ml']:.1f} ml\n"
                                f"confounders: {kinds}", fontsize=7)
    fig.suptitle("nnsynth demo cohort (axial slices, subject's right on the right)", fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path), dpi=90)
