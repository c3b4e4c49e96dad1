"""Files and folders written whole or not at all, and the one converter to plain values.

Every writer puts its output into a temporary sibling first and renames it into place
(``os.replace`` for files, a rename swap for folders), so a crash or a reader running beside us
never sees a truncated file or a half-written dataset. Temporary names start with ``.``, hold ``.tmp`` /
``.partial-`` / ``.old-`` and the writer's pid, so the next run removes what a killed run left behind.

Final files and folders get the modes the umask gives (``mkstemp`` / ``mkdtemp`` create them
private), because labs share ``nnUNet_raw`` and ``nnUNet_results`` within a group.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import math
import os
import re
import shutil
import sys
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


LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:(?P<pid>\d+)\.[^.]+\.tmp|partial-(?P<pid2>\d+)-[^.]+|old-(?P<pid3>\d+))")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_leftovers(folder: Path, name: str) -> list[Path]:
    """Delete what killed runs left next to ``folder/name`` (temporary files, staging and old folders).

    Only leftovers whose writing process is gone are touched (the pid is in their name). An old folder
    whose target is missing is put back instead of deleted. The removed paths are returned.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.glob(f".{glob.escape(name)}.*"):
        match = LEFTOVER.fullmatch(entry.name)
        if match is None or match.group("name") != name:
            continue
        pid = int(match.group("pid") or match.group("pid2") or match.group("pid3"))
        if pid == os.getpid() or _alive(pid):
            continue
        if match.group("pid3") and entry.is_dir() and not (folder / name).exists():
            entry.rename(folder / name)  # a swap was interrupted before the new folder was in place
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextmanager
def _temporary_sibling(path: Path, mode: str = "w") -> Iterator[tuple[IO, Path]]:
    """An open temporary file next to ``path``; renamed onto it only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
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
    for stale in remove_stale_leftovers(target.parent, target.name):
        print(f"nnsynth: removed {stale}, left by an interrupted earlier run")
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}-", dir=target.parent))
    _public_mode(folder, directory=True)
    return folder


RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # filesystem or kernel without exchange
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def replace_folder(staging: Path, target: Path, also_replaces: Path | None = None) -> None:
    """Put a finished staging folder in target's place; old content is deleted only afterwards.

    Where the kernel can (Linux ``renameat2`` ``RENAME_EXCHANGE``), old and new trade places in one atomic
    step, so target always names a whole folder, old or new. Elsewhere the old folder is first renamed
    aside (``.NAME.old-PID``), and the next run puts it back if a kill came before the new one was in
    place (``remove_stale_leftovers``). ``also_replaces``: another folder the new one supersedes (a
    dataset id under another name), moved aside and deleted with the old content.
    """
    staging, target = Path(staging), Path(target)
    aside = []
    if also_replaces is not None and Path(also_replaces) != target and Path(also_replaces).exists():
        hidden = Path(also_replaces).with_name(f".{Path(also_replaces).name}.old-{os.getpid()}")
        Path(also_replaces).rename(hidden)
        aside.append(hidden)
    if target.exists() and _exchange(staging, target):
        aside.append(staging)  # now holds the old content
    else:
        if target.exists():
            hidden = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(hidden)
            aside.append(hidden)
        staging.rename(target)
    for old in aside:
        shutil.rmtree(old, ignore_errors=True)


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
