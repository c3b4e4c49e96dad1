"""Where a dataset's generator checkpoints live, and which one a fold gets.

``$nnUNet_results/DatasetXXX_Name/nnsynth/<kind>_fold<F>.pt`` holds the final weights of a generator
trained on fold F (``<kind>_fold<F>_latest.pt`` the resume point while it trains). A fold without its
own checkpoint gets the embedded default when the dataset is the demo cohort, else an error that names
the command that trains one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import KINDS
from nnunet_synth.nnunet_io.fingerprint import DatasetFingerprint
from nnunet_synth.nnunet_io.folders import env_dir, require_dataset


def generator_dir(dataset_id: int) -> Path:
    """$nnUNet_results/DatasetXXX_Name/nnsynth (name taken from the preprocessed dataset)."""
    name = require_dataset(dataset_id, "nnUNet_preprocessed").name
    return env_dir("nnUNet_results") / name / "nnsynth"


def checkpoint_path(dataset_id: int, kind: str, fold: int | str, latest: bool = False) -> Path:
    """``<kind>_fold<F>.pt`` (final weights) or ``<kind>_fold<F>_latest.pt`` (resume point)."""
    if kind not in KINDS:
        raise NNSynthError(f"unknown generator kind {kind!r}")
    suffix = "_latest" if latest else ""
    return generator_dir(dataset_id) / f"{kind}_fold{fold}{suffix}.pt"


def find_checkpoint(dataset_id: int, kind: str, fold: int | str) -> Path:
    """The final checkpoint if training finished, else the latest resume point."""
    final = checkpoint_path(dataset_id, kind, fold)
    if final.is_file():
        return final
    latest = checkpoint_path(dataset_id, kind, fold, latest=True)
    if latest.is_file():
        return latest
    raise NNSynthError(f"no {kind} checkpoint for fold {fold} in {final.parent} "
                       f"(train one with nnsynth train-{kind if kind == 'maskgan' else 'translator'})")


def train_command(kind: str) -> str:
    return "nnsynth train-maskgan" if kind == "maskgan" else f"nnsynth train-translator --arch {kind}"


def checkpoint_for_fold(kind: str, dataset_id: int, fold: int | str, fingerprint: DatasetFingerprint,
                        dataset_json: dict, log: Callable[[str], None] = print) -> tuple[Path, DatasetFingerprint]:
    """The fold's own checkpoint, else the embedded default of a demo cohort; and the fingerprint to check."""
    for latest in (False, True):
        path = checkpoint_path(dataset_id, kind, fold, latest=latest)
        if path.is_file():
            return path, fingerprint
    from nnunet_synth.generators.defaults import embedded_for, model_card

    hint = (f"train one with `{train_command(kind)} -d {dataset_id} --fold {fold}` (looked for "
            f"{checkpoint_path(dataset_id, kind, fold).name} in {generator_dir(dataset_id)})")
    found = embedded_for(kind, fingerprint, dataset_json, hint)
    log(f"nnsynth: no {kind} checkpoint of this dataset for fold {fold}; using the embedded default "
        f"trained on the demo cohort ({model_card(kind)})")
    return found
