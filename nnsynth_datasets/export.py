"""Offline export (the paper's own workflow): a new raw dataset = real cases + N synthetic cases.

Synthetic cases are made by the synthesis engine in nnU-Net's preprocessed space of the source
dataset, so they are written back at the target spacing (transposed back to the raw axis order)
with already-normalized intensities; nnU-Net z-scores every case again, which leaves them unchanged.
Hence only datasets whose channels all use ZScoreNormalization can be exported.

No leak from validation: the synthetic cases of fold k are built from fold k's training cases only and
listed in fold k's training set only; the exported splits_final.json keeps every validation fold real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnsynth_datasets.raw_dataset import FILE_ENDING, staged_dataset, write_dataset_json
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.folders import env_dir, require_dataset
from nnunet_synth.nnunet_io.folds import splits_or_default, write_splits

SYNTHETIC_PREFIX = "synth"


def write_case(case, pre, images: Path, labels: Path, labelmaps: Path, case_id: str,
               ending: str = FILE_ENDING) -> None:
    """A synthetic case (preprocessed grid) as nnU-Net raw files: CASE_000c images, CASE label and label map."""
    from nnunet_synth.nnunet_io.volumes import write_preprocessed_volume

    for c in range(case.image.shape[0]):
        write_preprocessed_volume(case.image[c], pre, images / f"{case_id}_{c:04d}{ending}", np.float32)
    # the segmentation, not just the lesion: an inpainted host keeps its ignore label and other classes
    write_preprocessed_volume(np.clip(case.segmentation(), 0, None), pre, labels / f"{case_id}{ending}", np.uint8)
    write_preprocessed_volume(np.clip(case.labelmap, 0, None), pre, labelmaps / f"{case_id}{ending}", np.uint8)


def export_dataset(dataset_id: int, n: int, out_id: int, folds: list[int] | None = None,
                   plans: str = "nnUNetPlans", configuration: str = "3d_fullres", name: str | None = None,
                   seed: int = 0, overwrite: bool = False, lesions: str = "real", renderer: str = "gmm") -> Path:
    """``lesions`` / ``renderer``: names of the synthesis registry (inpainting painters write the lesion into
    the fold's real training cases, which then appear a second time with the new lesion)."""
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.synthesis.builder import build_engine
    from nnunet_synth.synthesis.registry import check_names

    if n < 1:
        raise NNSynthError("--n must be at least 1")
    check_names(lesions, renderer)
    raw = require_dataset(dataset_id, "nnUNet_raw")
    handle = open_preprocessed(dataset_id, plans, configuration)
    pre, cm = handle.root, handle.configuration_manager
    plans_file = pre / f"{plans}.json"
    bad = [s for s in cm.normalization_schemes if s != "ZScoreNormalization"]
    if bad:
        raise NNSynthError(f"export needs z-score normalized channels; {plans_file} uses {bad} "
                           "(synthetic intensities live in nnU-Net's normalized space)")
    dataset_json = json.loads((raw / "dataset.json").read_text())
    if dataset_json.get("file_ending") != FILE_ENDING:
        raise NNSynthError(f"export writes {FILE_ENDING} files; {raw / 'dataset.json'} uses "
                           f"{dataset_json.get('file_ending')!r}")
    dataset = handle.load_dataset()
    splits = splits_or_default(pre, list(dataset.identifiers))
    folds = list(range(len(splits))) if folds is None else folds
    unknown = [f for f in folds if not 0 <= f < len(splits)]
    if unknown:
        raise NNSynthError(f"folds {unknown} not in the {len(splits)} splits of {pre}")
    per_fold = [n // len(folds) + (i < n % len(folds)) for i in range(len(folds))]
    name = name or f"{raw.name.split('_', 1)[1]}Synth"
    ending = FILE_ENDING
    new_splits: list[dict[str, list[str]]] = [dict(train=list(s["train"]), val=list(s["val"])) for s in splits]
    with staged_dataset(out_id, name, overwrite) as out:
        for sub in ("imagesTr", "labelsTr", "labelmapsTr"):
            (out / sub).mkdir()
        for sub in ("imagesTr", "labelsTr", "labelmapsTr", "imagesTs", "labelsTs", "labelmapsTs"):
            if (raw / sub).is_dir():
                shutil.copytree(raw / sub, out / sub, dirs_exist_ok=True)
        counter = 0
        for fold, count in zip(folds, per_fold):
            train_ids = list(splits[fold]["train"])
            engine = build_engine(TrainingCases.of(handle, train_ids, dataset), lesions, renderer, fold=fold,
                                  seed=seed + fold, log=lambda *a: None)
            rng = np.random.default_rng([seed, fold])
            for _ in tqdm(range(count), desc=f"fold {fold}: synthetic cases", unit="case"):
                case = engine.make_case(rng)
                case_id = f"{SYNTHETIC_PREFIX}_f{fold}_{counter:05d}"
                counter += 1
                write_case(case, handle, out / "imagesTr", out / "labelsTr", out / "labelmapsTr", case_id, ending)
                new_splits[fold]["train"].append(case_id)
        num_training = len(list((out / "labelsTr").glob(f"*{ending}")))
        extra = {k: v for k, v in dataset_json.items()
                 if k not in ("channel_names", "labels", "numTraining", "file_ending", "name")}
        extra["overwrite_image_reader_writer"] = "SimpleITKIO"
        extra["nnsynth_export"] = {"source_dataset": raw.name, "synthetic_cases": counter, "folds": folds,
                                   "plans": plans, "configuration": configuration, "seed": seed,
                                   "lesions": lesions, "renderer": renderer}
        write_dataset_json(out, {int(k): v for k, v in dataset_json["channel_names"].items()}, num_training,
                           dataset_json["labels"], name, extra)
        final_name = f"Dataset{out_id:03d}_{name}"
    write_splits(env_dir("nnUNet_preprocessed") / final_name, new_splits)
    return require_dataset(out_id, "nnUNet_raw")

