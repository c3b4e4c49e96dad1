"""Writing nnU-Net raw datasets atomically: build in a hidden temporary folder, rename at the end.

An interrupted run therefore never leaves a half-written DatasetXXX folder behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nnunet_synth.errors import NNSynthError
from nnunet_synth.paths import dataset_folder_name, env_dir, find_dataset

FILE_ENDING = ".nii.gz"
# Anatomical label-map classes used by the demo cohort and the label-map tools; stored in
# dataset.json under "anatomical_labels" so the synthesis engine knows which value is which tissue.
ANATOMICAL_LABELS = {"background": 0, "csf": 1, "gray_matter": 2, "white_matter": 3, "lesion": 4}


def check_dataset_id_free(dataset_id: int, overwrite: bool) -> Path | None:
    """Refuse an id already used in nnUNet_raw unless overwrite; returns the folder to replace."""
    existing = find_dataset(dataset_id)
    if existing is not None and not overwrite:
        raise NNSynthError(f"dataset id {dataset_id} is already used by {existing} "
                           "(pass --overwrite to replace it)")
    return existing


@contextmanager
def staged_dataset(dataset_id: int, name: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces $nnUNet_raw/DatasetXXX_name."""
    existing = check_dataset_id_free(dataset_id, overwrite)
    raw = env_dir("nnUNet_raw")
    raw.mkdir(parents=True, exist_ok=True)
    final = raw / dataset_folder_name(dataset_id, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=raw))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if existing is not None:
        shutil.rmtree(existing)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


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
    (folder / "dataset.json").write_text(json.dumps(content, indent=2) + "\n")
