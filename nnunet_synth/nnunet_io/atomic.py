"""Files and folders written whole or not at all, and the one converter to plain values.

Every writer puts its output into a temporary sibling first and renames it into place
(``os.replace`` for files, a rename swap for folders), so a crash or a reader running beside us
never sees a truncated file or a half-written dataset. Temporary names start with ``.`` and hold
``.tmp`` / ``.partial-`` so leftovers of a killed run are easy to find.

Final files and folders get the modes the umask gives (``mkstemp`` / ``mkdtemp`` create them
private), because labs share ``nnUNet_raw`` and ``nnUNet_results`` within a group.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public_mode(path: Path, directory: bool = False) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _array_to_list(array: np.ndarray) -> Any:
    return array.tolist()


def to_plain(value: Any, *, array: Callable[[np.ndarray], Any] = _array_to_list, keep_tuples: bool = False,
             str_keys: bool = True, nan_to_none: bool = False) -> Any:
    """A copy made of python builtins: numpy scalars -> python, arrays -> ``array(a)`` (default: lists).

    The one converter for JSON files, fingerprints, checkpoint payloads and config dicts.
    ``keep_tuples`` and ``str_keys=False`` keep a torch payload's shape (optimizer states have int keys);
    ``nan_to_none`` turns non-finite floats into None (JSON has no NaN).
    """
    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {(str(k) if str_keys else k): walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            items = [walk(x) for x in v]
            return tuple(items) if keep_tuples and isinstance(v, tuple) else items
        if isinstance(v, np.ndarray):
            return array(v)
        if isinstance(v, np.generic):
            v = v.item()
        if nan_to_none and isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    return walk(value)


@contextmanager
def _temporary_sibling(path: Path, mode: str = "w") -> Iterator[tuple[IO, Path]]:
    """An open temporary file next to ``path``; renamed onto it only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh, Path(tmp)
            fh.flush()
            os.fsync(fh.fileno())
        _public_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    with _temporary_sibling(path) as (fh, _):
        fh.write(text)
    return Path(path)


def write_json_atomic(path: Path, data: Any, indent: int = 2) -> Path:
    """Splits, designs, summaries, plans: plain values only, non-finite numbers written as null."""
    return write_text_atomic(path, json.dumps(to_plain(data, nan_to_none=True), indent=indent, allow_nan=False)
                             + "\n")


def save_npy_atomic(path: Path, array: np.ndarray) -> Path:
    with _temporary_sibling(path, "wb") as (fh, _):
        np.save(fh, array)
    return Path(path)


def torch_save_atomic(path: Path, payload: Any) -> Path:
    import torch

    with _temporary_sibling(path, "wb") as (fh, _):
        torch.save(payload, fh)
    return Path(path)


def staging_folder(target: Path) -> Path:
    """An empty hidden folder next to target (``.NAME.partial-XXXX``) to build target's new content in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    _public_mode(folder, directory=True)
    return folder


def replace_folder(staging: Path, target: Path, also_replaces: Path | None = None) -> None:
    """Swap a finished staging folder in for target by renames; old content is deleted only afterwards.

    At any moment either the old or the new folder is complete under target's name or next to it
    (``.NAME.old-PID``), never a half-deleted one. ``also_replaces``: another folder the new one
    supersedes (a dataset id renamed), moved aside first and deleted with the old content.
    """
    staging, target = Path(staging), Path(target)
    olds = [target] + ([Path(also_replaces)] if also_replaces is not None and Path(also_replaces) != target else [])
    aside = []
    for old in olds:
        if old.exists():
            hidden = old.with_name(f".{old.name}.old-{os.getpid()}")
            old.rename(hidden)
            aside.append(hidden)
    staging.rename(target)
    for hidden in aside:
        shutil.rmtree(hidden, ignore_errors=True)


@contextmanager
def staged_folder(target: Path, also_replaces: Path | None = None) -> Iterator[Path]:
    """Yield a staging folder; when the block succeeds it replaces target, when it fails it is removed."""
    staging = staging_folder(target)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, target, also_replaces)
