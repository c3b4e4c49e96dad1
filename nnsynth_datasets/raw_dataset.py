"""Writing nnU-Net raw datasets atomically: build in a hidden temporary folder, rename at the end.

An interrupted run therefore never leaves a half-written DatasetXXX folder behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import staged_folder, write_json_atomic
from nnunet_synth.nnunet_io.folders import dataset_folder_name, env_dir, find_dataset
from nnunet_synth.synthesis.anatomy import DEFAULT_ANATOMICAL_LABELS

FILE_ENDING = ".nii.gz"
# Anatomical label-map classes used by the demo cohort and the label-map tools; stored in
# dataset.json under "anatomical_labels" so the synthesis engine knows which value is which tissue.
ANATOMICAL_LABELS = DEFAULT_ANATOMICAL_LABELS


def check_dataset_id_free(dataset_id: int, overwrite: bool) -> Path | None:
    """Refuse an id already used in nnUNet_raw unless overwrite; returns the folder to replace."""
    existing = find_dataset(dataset_id)
    if existing is not None and not overwrite:
        raise NNSynthError(f"dataset id {dataset_id} is already used by {existing} "
                           "(pass --overwrite to replace it)")
    return existing


@contextmanager
def staged_dataset(dataset_id: int, name: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces $nnUNet_raw/DatasetXXX_name by renames.

    The old dataset (of this id, under any name) is deleted only after the new one is in place.
    """
    existing = check_dataset_id_free(dataset_id, overwrite)
    with staged_folder(env_dir("nnUNet_raw") / dataset_folder_name(dataset_id, name), existing) as staging:
        yield staging


def write_dataset_json(folder: Path, channel_names: dict[int, str], num_training: int,
                       labels: dict[str, int] | None = None, dataset_name: str = "",
                       extra: dict | None = None) -> None:
    """dataset.json as nnU-Net v2 reads it (same keys as nnunetv2's generate_dataset_json)."""
    content = {
        "channel_names": {str(k): v for k, v in channel_names.items()},
        "labels": labels or {"background": 0, "lesion": 1},
        "numTraining": int(num_training),
        "file_ending": FILE_ENDING,
        "name": dataset_name,
    }
    content.update(extra or {})
    write_json_atomic(folder / "dataset.json", content)
