"""Anatomical label maps for real cases: what the translators learn to render.

Two sources:
* estimated: brain mask by threshold + morphology, then a 3-class Gaussian mixture on the brain
  intensities of one channel (CSF, grey and white matter; which component is which follows from
  the channel's contrast), posteriors smoothed a little so noise does not speckle the map;
* imported: FreeSurfer / SynthSeg / FastSurfer segmentations, relabelled with a mapping
  {source label: target class} and resampled (nearest) onto the image grid.
Either way the lesion voxels of labelsTr become the lesion class. Maps are uint8 on the grid of
the image (same affine), written to a temporary folder that is renamed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from dataset_tools.raw_dataset import ANATOMICAL_LABELS
from nnunet_synth.errors import NNSynthError
from nnunet_synth.json_files import write_json_atomic

LABELMAP_FOLDERS = {"Tr": "labelmapsTr", "Ts": "labelmapsTs"}
TISSUES = ("csf", "gray_matter", "white_matter")
# Tissues by increasing mean intensity for each contrast.
CONTRAST_ORDER = {
    "t1": ("csf", "gray_matter", "white_matter"),
    "flair": ("csf", "white_matter", "gray_matter"),
    "t2": ("white_matter", "gray_matter", "csf"),
    "dwi": ("csf", "white_matter", "gray_matter"),
    "adc": ("white_matter", "gray_matter", "csf"),
}
# Best GM/WM contrast first; DWI last (the GM/WM difference is a few percent, below its bias field).
CHANNEL_PREFERENCE = ("t1", "flair", "t2", "adc", "dwi")
_CONTRAST_PATTERNS = (("flair", r"flair"), ("t1", r"t1"), ("t2", r"t2"), ("adc", r"adc|md\b|diffusivity"),
                      ("dwi", r"dwi|trace|b1000|diffusion"))

# FreeSurfer aseg / aparc+aseg (also SynthSeg and FastSurfer, which use the same numbers) -> 3 tissues.
FREESURFER_MAPPING = {
    "*": "background",
    "2": "white_matter", "41": "white_matter", "7": "white_matter", "46": "white_matter",
    "16": "white_matter", "28": "white_matter", "60": "white_matter", "77": "white_matter",
    "78": "white_matter", "79": "white_matter", "85": "white_matter", "251-255": "white_matter",
    "3": "gray_matter", "42": "gray_matter", "8": "gray_matter", "47": "gray_matter",
    "10-13": "gray_matter", "17-18": "gray_matter", "26": "gray_matter", "49-54": "gray_matter",
    "58": "gray_matter", "80": "gray_matter", "1000-1035": "gray_matter", "2000-2035": "gray_matter",
    "4": "csf", "5": "csf", "14": "csf", "15": "csf", "24": "csf", "30": "csf", "31": "csf",
    "43": "csf", "44": "csf", "62": "csf", "63": "csf", "72": "csf",
}


def guess_contrast(channel_name: str) -> str | None:
    name = channel_name.lower()
    for contrast, pattern in _CONTRAST_PATTERNS:
        if re.search(pattern, name):
            return contrast
    return None


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Head/brain support: threshold, opened, largest component, closed, holes filled.

    Skull-stripped images and fitted maps (ADC) have a blank background: everything above it counts.
    Otherwise Otsu's threshold on the whole image (bright outliers clipped) separates air from tissue.
    Filling holes brings back ventricles that are dark in the channel (CSF on T1, DWI, FLAIR).
    """
    from skimage.filters import threshold_otsu

    floor = float(image.min())
    above = image[image > floor]
    if above.size < 16:
        return np.zeros(image.shape, bool)
    if np.mean(image <= floor) > 0.05:
        mask = image > floor
    else:
        clipped = np.minimum(image, np.percentile(above, 99.5))
        mask = clipped > threshold_otsu(clipped)
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    mask = ndimage.binary_closing(mask, iterations=2, border_value=0) | mask
    mask = ndimage.binary_fill_holes(mask)
    for axis in range(3):  # slice-wise too: sulci open to the outside in 3D but closed in a slice
        mask = np.stack([ndimage.binary_fill_holes(s) for s in np.moveaxis(mask, axis, 0)], axis=axis)
    return mask


@dataclass(frozen=True)
class GaussianMixture1D:
    """A 1D Gaussian mixture fitted by EM (numpy only: scikit-learn would add a 2 s import per worker)."""

    means: np.ndarray
    variances: np.ndarray
    weights: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, means: np.ndarray, weights: np.ndarray, iterations: int = 300,
            tol: float = 1e-5) -> GaussianMixture1D:
        """EM from the given means and weights; stops when the mean log-likelihood gains < tol."""
        floor = 1e-6 * float(np.var(values)) + 1e-12
        model = cls(np.asarray(means, float), np.full(len(means), float(np.var(values)) / len(means) + floor),
                    np.asarray(weights, float) / np.sum(weights))
        previous = -np.inf
        for _ in range(iterations):
            log_joint = model._log_joint(values)  # (components, voxels)
            top = log_joint.max(axis=0)
            log_norm = top + np.log(np.exp(log_joint - top).sum(axis=0))
            resp = np.exp(log_joint - log_norm)
            mass = resp.sum(axis=1) + 1e-12
            mu = resp @ values / mass
            var = np.einsum("kn,kn->k", resp, (values - mu[:, None]) ** 2) / mass + floor
            model = cls(mu, var, mass / mass.sum())
            likelihood = float(log_norm.mean())
            if likelihood - previous < tol:
                break
            previous = likelihood
        return model

    def _log_joint(self, values: np.ndarray) -> np.ndarray:
        diff = values[None, :] - self.means[:, None]
        return ((np.log(self.weights) - 0.5 * np.log(2 * np.pi * self.variances))[:, None]
                - 0.5 * diff * diff / self.variances[:, None])

    def predict(self, values: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
        return np.concatenate([np.argmax(self._log_joint(values[i:i + chunk]), axis=0)
                               for i in range(0, max(len(values), 1), chunk)])


def _smooth_inside(image: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that averages only over ``mask`` (no dark background bleeding in)."""
    if sigma <= 0:
        return image
    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    return ndimage.gaussian_filter(np.where(mask, image, 0).astype(np.float32), sigma) / np.maximum(weight, 1e-3)


def tissue_classes(image: np.ndarray, brain: np.ndarray, contrast: str, exclude: np.ndarray | None = None,
                   smooth_voxels: float = 0.7, seed: int = 0, max_samples: int = 200_000) -> dict[str, np.ndarray]:
    """Boolean maps of csf / gray_matter / white_matter inside ``brain`` (3-component 1D GMM).

    The image is smoothed a little inside the brain first (noise blurs the GM/WM boundary more
    than smoothing does). CSF is a small class at the bright or dark end of every contrast, so the
    mixture starts with CSF at the extreme and GM/WM at the 30th and 70th percentiles: started
    evenly, EM tends to let a broad "CSF" component swallow the GM tail.
    """
    fit_mask = brain & ~exclude if exclude is not None else brain
    x = _smooth_inside(image.astype(np.float32), brain, smooth_voxels)
    values = x[fit_mask].astype(np.float64)
    if values.size < 30:
        raise NNSynthError("too few brain voxels for a tissue mixture")
    rng = np.random.default_rng(seed)
    sample = values if values.size <= max_samples else rng.choice(values, max_samples, replace=False)
    order = CONTRAST_ORDER[contrast]
    csf_first = order[0] == "csf"
    percentiles, weights = ([2, 30, 70], [0.1, 0.45, 0.45]) if csf_first else ([30, 70, 98], [0.45, 0.45, 0.1])
    gmm = GaussianMixture1D.fit(sample, np.percentile(sample, percentiles), np.array(weights))
    winner = np.full(image.shape, -1)
    winner[brain] = gmm.predict(x[brain].astype(np.float64))
    ranked = np.argsort(gmm.means)
    return {tissue: winner == ranked[rank] for rank, tissue in enumerate(order)}


def estimate_labelmap(image: np.ndarray, lesion: np.ndarray | None, contrast: str, labels: dict[str, int],
                      brain: np.ndarray | None = None, smooth_voxels: float = 0.7) -> np.ndarray:
    """uint8 label map: tissues from the GMM inside the brain mask, lesion voxels on top."""
    missing = [n for n in (*TISSUES, "lesion", "background") if n not in labels]
    if missing:
        raise NNSynthError(f"anatomical_labels lacks {', '.join(missing)}; estimation needs "
                           f"{', '.join(ANATOMICAL_LABELS)}")
    lesion = lesion.astype(bool) if lesion is not None else None
    brain = brain_mask(image) if brain is None else brain
    if lesion is not None:
        brain = brain | lesion
    out = np.full(image.shape, labels["background"], np.uint8)
    for tissue, where in tissue_classes(image, brain, contrast, lesion, smooth_voxels).items():
        out[where] = labels[tissue]
    if lesion is not None:
        out[lesion] = labels["lesion"]
    return out


def parse_mapping(mapping: dict[str, str], labels: dict[str, int]) -> tuple[dict[int, int], int | None]:
    """{source label or "a-b" range or "*": class name} -> ({source: target value}, default)."""
    table: dict[int, int] = {}
    default = None
    for key, target in mapping.items():
        if str(target) not in labels:
            raise NNSynthError(f"mapping target {target!r} (for {key}) is not an anatomical label "
                               f"({', '.join(labels)})")
        value = labels[str(target)]
        key = str(key).strip()
        if key == "*":
            default = value
            continue
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", key)
        if not match:
            raise NNSynthError(f"mapping key {key!r} is not a label, a range 'a-b' or '*'")
        first = int(match.group(1))
        for source in range(first, int(match.group(2) or first) + 1):
            table[source] = value
    return table, default


def relabel(segmentation: np.ndarray, table: dict[int, int], default: int | None, where: Path) -> np.ndarray:
    seg = np.rint(segmentation).astype(np.int64)
    present = np.unique(seg)
    unmapped = [int(v) for v in present if v not in table and v != 0]
    if unmapped and default is None:
        shown = ", ".join(map(str, unmapped[:12])) + (", ..." if len(unmapped) > 12 else "")
        raise NNSynthError(f"{where}: label(s) {shown} not in the mapping (add them, or a \"*\" default)")
    lut = np.full(int(max(present.max(), max(table, default=0))) + 1, default or 0, np.uint8)
    lut[0] = table.get(0, 0)
    for source, target in table.items():
        lut[source] = target
    return lut[np.clip(seg, 0, None)]


def dice_per_class(pred: np.ndarray, ref: np.ndarray, labels: dict[str, int]) -> dict[str, float]:
    """Dice of every non-background class present in either map."""
    scores = {}
    for name, value in labels.items():
        if name == "background":
            continue
        p, r = pred == value, ref == value
        total = int(p.sum() + r.sum())
        if total:
            scores[name] = 2.0 * float(np.logical_and(p, r).sum()) / total
    return scores


def labelmap_agreement(pred_dir: Path, ref_dir: Path, labels: dict[str, int],
                       case_ids: list[str] | None = None, file_ending: str = ".nii.gz") -> dict:
    """Dice per tissue class of the maps in pred_dir against same-named maps in ref_dir."""
    cases = case_ids or sorted(p.name[: -len(file_ending)] for p in pred_dir.glob(f"*{file_ending}"))
    per_case = {}
    for case in cases:
        pred_file, ref_file = pred_dir / f"{case}{file_ending}", ref_dir / f"{case}{file_ending}"
        if not ref_file.is_file():
            raise NNSynthError(f"{ref_file}: reference label map missing")
        pred, ref = (np.asanyarray(nib.load(f).dataobj) for f in (pred_file, ref_file))
        if pred.shape != ref.shape:
            raise NNSynthError(f"{ref_file}: shape {ref.shape} differs from {pred.shape} of {pred_file}")
        per_case[case] = dice_per_class(pred, ref, labels)
    names = [n for n in labels if n != "background"]
    mean = {n: float(np.mean(v)) for n in names if (v := [d[n] for d in per_case.values() if n in d])}
    return {"cases": len(per_case), "mean_dice": mean, "per_case": per_case}


@dataclass(frozen=True)
class LabelmapTask:
    """One case for a worker: the image, its lesion mask, where to write, how to label."""

    case_id: str
    image: Path
    lesion: Path | None
    output: Path
    labels: tuple[tuple[str, int], ...]
    contrast: str = ""
    segmentation: Path | None = None
    table: tuple[tuple[int, int], ...] = ()
    default: int | None = None
    smooth_voxels: float = 0.7
    other_channels: tuple[Path, ...] = ()  # their brain masks are intersected with the image's


def _load(path: Path, what: str) -> tuple[np.ndarray, nib.spatialimages.SpatialImage]:
    """Data and image of a 3D file, or an NNSynthError that names it."""
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for broken or truncated files
        raise NNSynthError(f"{path}: unreadable or truncated {what} ({type(exc).__name__}: "
                           + " ".join(str(exc).split()) + ")") from exc
    if data.ndim != 3:
        raise NNSynthError(f"{path}: expected a 3D {what}, got shape {data.shape}")
    return data, img


def run_task(task: LabelmapTask) -> tuple[str, str | None]:
    """Make and write one label map; returns (case id, error message or None)."""
    from dataset_tools.convert.resample import resample_onto
    from dataset_tools.convert.validation import Volume
    from dataset_tools.convert.writer import save_on_grid

    try:
        data, img = _load(task.image, "image")
        image = data.astype(np.float32)
        ref = Volume(task.image, "image", image, np.asarray(img.affine, float),
                     img.header if isinstance(img.header, nib.Nifti1Header) else nib.Nifti1Header())
        lesion = None
        if task.lesion is not None and task.lesion.is_file():
            lesion = _load(task.lesion, "lesion mask")[0] > 0
            if lesion.shape != image.shape:
                raise NNSynthError(f"{task.lesion}: shape {lesion.shape} differs from the image {image.shape}")
        labels = dict(task.labels)
        if task.segmentation is not None:
            data, seg_img = _load(task.segmentation, "segmentation")
            seg = np.rint(data).astype(np.int32)
            if seg.shape != image.shape or not np.allclose(seg_img.affine, ref.affine, atol=1e-2):
                seg = resample_onto(seg, np.asarray(seg_img.affine, float), image.shape, ref.affine, nearest=True)
            out = relabel(seg, dict(task.table), task.default, task.segmentation)
            if lesion is not None:
                out[lesion] = labels["lesion"]
        else:
            brain = brain_mask(image)
            for path in task.other_channels:
                other = _load(path, "image")[0].astype(np.float32)
                other_brain = brain_mask(other) if other.shape == image.shape else None
                # a channel whose threshold fails (blank, constant) must not erase the brain
                if other_brain is not None and other_brain.sum() > 0.5 * brain.sum():
                    brain &= other_brain
            try:
                out = estimate_labelmap(image, lesion, task.contrast, labels, brain, task.smooth_voxels)
            except NNSynthError as exc:
                raise NNSynthError(f"{task.image}: {exc}") from exc
        save_on_grid(out, ref, task.output, np.uint8)
    except NNSynthError as exc:
        return task.case_id, str(exc)
    return task.case_id, None


def find_segmentation(folder: Path, case_id: str, pattern: str | None) -> Path | None:
    """The imported segmentation of a case: by --pattern, else the usual tool output names."""
    candidates = [pattern] if pattern else [
        "{case}.nii.gz", "{case}.nii", "{case}.mgz", "{case}_0000_synthseg.nii.gz", "{case}_synthseg.nii.gz",
        "{case}/mri/aparc.DKTatlas+aseg.deep.mgz", "{case}/mri/aseg.mgz", "{case}/mri/aparc+aseg.mgz"]
    for candidate in candidates:
        path = folder / candidate.format(case=case_id)
        if path.is_file():
            return path
    return None


def replace_folder_atomically(staging: Path, target: Path) -> None:
    """Swap a finished staging folder in for target (old content removed only after the swap)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def staging_folder(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))


def pick_channel(channel_names: dict[int, str], channel: str | None, contrast: str | None,
                 estimate: bool) -> tuple[int, str]:
    """(channel index, contrast) from --channel/--contrast, or the channel with the best tissue contrast."""
    if channel is not None:
        matches = [i for i, n in channel_names.items() if n.lower() == channel.lower() or str(i) == channel]
        if not matches:
            raise NNSynthError(f"no channel {channel!r} in dataset.json (channels: "
                               + ", ".join(f"{i}={n}" for i, n in channel_names.items()) + ")")
        index = matches[0]
    elif not estimate:
        index = min(channel_names)
    else:
        known = {i: guess_contrast(n) for i, n in channel_names.items()}
        ranked = sorted((CHANNEL_PREFERENCE.index(c), i) for i, c in known.items() if c)
        if not ranked and contrast is None:
            raise NNSynthError("cannot tell the contrast of channels " + ", ".join(channel_names.values())
                               + "; pass --channel and --contrast")
        index = ranked[0][1] if ranked else min(channel_names)
    chosen = contrast or guess_contrast(channel_names[index]) or ""
    if estimate and chosen not in CONTRAST_ORDER:
        raise NNSynthError(f"unknown contrast of channel {channel_names[index]!r}; pass --contrast "
                           + "|".join(CONTRAST_ORDER))
    return index, chosen


def _case_ids(images: Path, file_ending: str) -> list[str]:
    suffix = f"_0000{file_ending}"
    return sorted(p.name[: -len(suffix)] for p in images.glob(f"*{suffix}"))


def _run_tasks(tasks: list[LabelmapTask], num_processes: int, progress: bool) -> list[str]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="labelmaps", unit="case", disable=None if progress else True)
    errors = []
    with bar:
        if num_processes <= 1 or len(tasks) <= 1:
            results = map(run_task, tasks)
            for _, error in results:
                errors += [error] if error else []
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(num_processes, len(tasks)), mp_context=ctx) as pool:
                for _, error in pool.map(run_task, tasks):
                    errors += [error] if error else []
                    bar.update()
    return errors


def make_labelmaps(dataset_id: int, channel: str | None = None, contrast: str | None = None,
                   source: Path | None = None, mapping: dict | None = None, pattern: str | None = None,
                   output: Path | None = None, overwrite: bool = False, include_test: bool = False,
                   num_processes: int = 1, smooth_voxels: float = 0.7, reference: Path | None = None,
                   progress: bool = True) -> dict:
    """Label maps for every case of a raw dataset (estimated, or imported when source is given)."""
    from nnunet_synth.paths import require_dataset

    folder = require_dataset(dataset_id)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    file_ending = dataset_json.get("file_ending", ".nii.gz")
    labels = {str(k): int(v) for k, v in dataset_json.get("anatomical_labels", ANATOMICAL_LABELS).items()}
    channels = {int(k): str(v) for k, v in dataset_json["channel_names"].items()}
    if (source is None) != (mapping is None):
        raise NNSynthError("--from and --mapping go together")
    if output is not None and include_test:
        raise NNSynthError("--output applies to the training maps only; leave out --with-test")
    index, chosen = pick_channel(channels, channel, contrast, estimate=source is None)
    table, default = parse_mapping(mapping, labels) if mapping is not None else ({}, None)
    plan = [("Tr", output or folder / LABELMAP_FOLDERS["Tr"])]
    if include_test:
        plan.append(("Ts", folder / LABELMAP_FOLDERS["Ts"]))
    for _, target in plan:
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise NNSynthError(f"{target} already exists (pass --overwrite to replace it)")
    problems: list[str] = []
    staged: list[tuple[Path, Path, list[LabelmapTask]]] = []
    try:
        for split, target in plan:
            stage = staging_folder(target)
            tasks = []
            case_ids = _case_ids(folder / f"images{split}", file_ending)
            if split == "Tr" and not case_ids:
                raise NNSynthError(f"no cases (*_0000{file_ending}) in {folder / 'imagesTr'}")
            for case in case_ids:
                seg = None
                if source is not None:
                    seg = find_segmentation(source, case, pattern)
                    if seg is None:
                        problems.append(f"{source / (pattern or '{case}.nii.gz').format(case=case)}: "
                                        f"no segmentation for case {case}")
                        continue
                tasks.append(LabelmapTask(case, folder / f"images{split}" / f"{case}_{index:04d}{file_ending}",
                                          folder / f"labels{split}" / f"{case}{file_ending}",
                                          stage / f"{case}{file_ending}", tuple(labels.items()), chosen, seg,
                                          tuple(table.items()), default, smooth_voxels,
                                          tuple(folder / f"images{split}" / f"{case}_{i:04d}{file_ending}"
                                                for i in channels if i != index and source is None)))
            staged.append((stage, target, tasks))
        if not problems:
            problems += _run_tasks([t for _, _, tasks in staged for t in tasks], num_processes, progress)
        if problems:
            raise NNSynthError(f"{len(problems)} problem(s); no label map was written:\n  " + "\n  ".join(problems))
        for stage, target, _ in staged:
            replace_folder_atomically(stage, target)
    finally:
        for stage, _, _ in staged:
            shutil.rmtree(stage, ignore_errors=True)
    if "anatomical_labels" not in dataset_json:
        dataset_json["anatomical_labels"] = labels
        write_json_atomic(folder / "dataset.json", dataset_json)
    result = {"dataset": folder.name, "cases": sum(len(t) for _, _, t in staged), "channel": channels[index],
              "contrast": chosen if source is None else None, "source": str(source) if source else None,
              "outputs": [str(target) for _, target in plan]}
    if reference is not None:
        result["agreement"] = labelmap_agreement(plan[0][1], reference, labels, file_ending=file_ending)
    return result


def format_agreement(agreement: dict) -> str:
    """Mean Dice per tissue class, one line each."""
    lines = [f"agreement with the reference maps ({agreement['cases']} case(s)), mean Dice per class:"]
    lines.extend(f"  {name:<14} {dice:.3f}" for name, dice in agreement["mean_dice"].items())
    return "\n".join(lines)
