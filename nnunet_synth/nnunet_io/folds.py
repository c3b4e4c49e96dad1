"""The one owner of the folds: which cases train and which validate, exactly as nnU-Net decides it.

nnU-Net's ``nnUNetTrainer.do_split`` reads ``$nnUNet_preprocessed/DatasetXXX/splits_final.json``;
when the file is missing it creates nnU-Net's 5-fold split (``generate_crossval_split``, seed 12345);
a fold beyond the file gets a seeded random 80:20 split; fold ``all`` trains and validates on every
case. Everything in nnsynth that needs a fold (generator training, the synthesis engine, the
mosaic, the export, the experiment's extra folds) asks this module, so a generator never sees a case
that nnU-Net would hold out of that fold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic
from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset

SPLITS_FILE = "splits_final.json"
NNUNET_SPLIT_SEED = 12345
NNUNET_FOLDS = 5

Splits = list[dict[str, list[str]]]


def splits_file(preprocessed_root: Path) -> Path:
    return Path(preprocessed_root) / SPLITS_FILE


def default_splits(case_ids: list[str]) -> Splits:
    """nnU-Net's own 5-fold split of these cases (what nnUNetv2_train would create)."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    return generate_crossval_split(sorted(case_ids), seed=NNUNET_SPLIT_SEED, n_splits=NNUNET_FOLDS)


def read_splits(preprocessed_root: Path) -> Splits | None:
    """splits_final.json as a list of folds, or None when there is none; a malformed file is refused."""
    file = splits_file(preprocessed_root)
    if not file.is_file():
        return None
    try:
        splits = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NNSynthError(f"{file} is not valid JSON ({exc})") from None
    if not isinstance(splits, list) or not all(isinstance(s, dict) and "train" in s and "val" in s for s in splits):
        raise NNSynthError(f"{file} is not a list of folds with 'train' and 'val' lists")
    return splits


def splits_or_default(preprocessed_root: Path, case_ids: list[str]) -> Splits:
    """The dataset's splits_final.json, else nnU-Net's default split of case_ids (not written)."""
    splits = read_splits(preprocessed_root)
    return splits if splits is not None else default_splits(case_ids)


def write_splits(preprocessed_root: Path, splits: Splits) -> Path:
    """Write splits_final.json atomically (the only writer of that file in nnsynth)."""
    return write_json_atomic(splits_file(preprocessed_root), splits)


def fold_case_ids(pre: PreprocessedDataset, fold: int | str, create: bool = True) -> tuple[list[str], list[str]]:
    """(training ids, validation ids) of a fold of the preprocessed dataset, as nnU-Net splits them.

    ``create``: write nnU-Net's default split when splits_final.json is missing, as nnU-Net itself does
    at the start of training, so both agree on the folds afterwards.
    """
    preprocessed_root = pre.root
    identifiers = sorted(pre.identifiers())
    if not identifiers:
        raise NNSynthError(f"no preprocessed cases in {pre.data_folder}")
    if str(fold) == "all":
        return identifiers, identifiers
    try:
        fold = int(fold)
    except ValueError:
        raise NNSynthError(f"fold must be an integer >= 0 or 'all', got {fold!r}") from None
    if fold < 0:
        raise NNSynthError(f"fold must be an integer >= 0 or 'all', got {fold}")
    file = splits_file(preprocessed_root)
    splits = read_splits(preprocessed_root)
    if splits is None:
        if len(identifiers) < NNUNET_FOLDS:
            raise NNSynthError(f"{len(identifiers)} cases are too few for nnU-Net's 5-fold split; write "
                               f"{file} yourself or use fold all")
        splits = default_splits(identifiers)
        if create:
            write_splits(preprocessed_root, splits)
    if fold < len(splits):
        train, val = list(splits[fold]["train"]), list(splits[fold]["val"])
    else:  # nnU-Net's fallback: seeded random 80:20 split
        rnd = np.random.RandomState(seed=NNUNET_SPLIT_SEED + fold)
        keys = np.sort(identifiers)
        idx_tr = rnd.choice(len(keys), int(len(keys) * 0.8), replace=False)
        train = [str(keys[i]) for i in idx_tr]
        val = [str(keys[i]) for i in range(len(keys)) if i not in idx_tr]
    missing = sorted(set(train) - set(identifiers))
    if missing:
        raise NNSynthError(f"{file} names cases missing from the preprocessed data: {', '.join(missing[:5])}")
    return train, val



def held_out_note(train: list[str], val: list[str]) -> str:
    """How a fold's validation cases relate to its training cases, for logs."""
    held_out = len(set(val) - set(train))
    return f"{held_out} validation cases held out" if held_out else "no case held out (fold all)"
