"""Who owns an experiment fold: a tag in splits_final.json, a marker in each fold folder, one lock.

An experiment appends its subsamples as folds to the dataset's shared splits_final.json, and nnU-Net
keeps a fold's models in ``<trainer>__<plans>__3d_fullres/fold_<k>``, reused when a run resumes. Two
experiment folders on one dataset draw the same subsample per seed, so a case list alone cannot tell
whose fold an index is. The owner tag (``<experiment folder>#<subset key>``) can: it is written into the
split entry (nnU-Net reads only ``train`` and ``val``) and into ``nnsynth_owner.json`` of every fold
folder before a run trains there, and a run refuses a fold folder that another owner wrote.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic

TAG_KEY = "nnsynth_owner"
MARKER = "nnsynth_owner.json"


def owner_tag(experiment_folder: Path, key: str) -> str:
    return f"{experiment_folder}#{key}"


def fold_dir_owner(fold_dir: Path) -> str | None:
    marker = fold_dir / MARKER
    return json.loads(marker.read_text()).get(TAG_KEY) if marker.is_file() else None


def check_fold_dir(fold_dir: Path, tag: str) -> None:
    """Refuse a fold folder another experiment's subsample trained in (a folder without marker is older)."""
    found = fold_dir_owner(fold_dir)
    if found is not None and found != tag:
        raise NNSynthError(f"{fold_dir} holds models of {found}, not of {tag}: the fold index was given to "
                           "another subsample (splits_final.json re-created or restored?). Move that folder away "
                           "or use another experiment folder; nothing was trained or scored")


def claim_fold_dir(fold_dir: Path, tag: str, cases: list[str]) -> None:
    """Mark a fold folder as this subsample's before nnU-Net trains there."""
    fold_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(fold_dir / MARKER, {TAG_KEY: tag, "train": sorted(cases)})


@contextlib.contextmanager
def splits_lock(splits_file: Path) -> Iterator[None]:
    """Exclusive lock around read-append-write of splits_final.json (two experiments started at once)."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): no lock, as before
        yield
        return
    splits_file.parent.mkdir(parents=True, exist_ok=True)
    with open(splits_file.with_name(splits_file.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
