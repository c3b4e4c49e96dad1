"""`nnsynth labelmaps`: anatomical label maps for real cases, what the translators learn to render.

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
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from nnsynth_datasets.labelmaps.agreement import labelmap_agreement
from nnsynth_datasets.labelmaps.estimate import brain_mask, estimate_labelmap, pick_channel
from nnsynth_datasets.labelmaps.imported import find_segmentation, parse_mapping, relabel
from nnsynth_datasets.raw_dataset import ANATOMICAL_LABELS
from nnsynth_datasets.workers import die_with_parent
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import replace_folder, staging_folder, write_json_atomic

LABELMAP_FOLDERS = {"Tr": "labelmapsTr", "Ts": "labelmapsTs"}


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
    from nnsynth_datasets.convert.resample import resample_onto
    from nnsynth_datasets.convert.validation import Volume
    from nnsynth_datasets.convert.writer import save_on_grid

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
            with ProcessPoolExecutor(min(num_processes, len(tasks)), mp_context=ctx,
                                     initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
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
    from nnunet_synth.nnunet_io.folders import require_dataset

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
            replace_folder(stage, target)
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
