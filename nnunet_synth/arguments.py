"""Argument types shared by every ``nnsynth`` command: ranges for numbers, safe names, output files.

argparse calls these on the raw text, so a bad value stops the command before anything runs, with
``nnsynth CMD: error: argument --OPTION: ...`` (one line) and exit code 2. Names go through
``nnunet_io.folders.check_name``, the one check for names that become file or folder names.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.folders import check_name


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum]."""
    if minimum is not None and maximum is not None:
        bounds = f"between {minimum} and {maximum}"
    else:
        bounds = f">= {minimum}" if minimum is not None else f"<= {maximum}" if maximum is not None else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer{' ' + bounds if bounds else ''}, got {text!r}") \
                from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def number(minimum: float | None = None, maximum: float | None = None, *, above: bool = False,
           below: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [minimum, maximum] (``above``/``below``: the bound itself excluded)."""
    lo = f"{'>' if above else '>='} {minimum:g}" if minimum is not None else ""
    hi = f"{'<' if below else '<='} {maximum:g}" if maximum is not None else ""
    bounds = " and ".join(s for s in (lo, hi) if s)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        bad = not math.isfinite(value)
        if not bad and minimum is not None:
            bad = value <= minimum if above else value < minimum
        if not bad and maximum is not None:
            bad = value >= maximum if below else value > maximum
        if bad:
            raise argparse.ArgumentTypeError(f"must be a number{' ' + bounds if bounds else ''}, got {text!r}")
        return value
    parse.__name__ = "number"
    return parse


def name(what: str = "name") -> Callable[[str], str]:
    """An argparse type: a name that becomes part of a file or folder name (no '/', '..', spaces)."""
    def parse(text: str) -> str:
        try:
            return check_name(text, "value")
        except NNSynthError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "name"
    return parse


def output_file(text: str) -> Path:
    """An argparse type: a file to write (not an existing folder)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name (e.g. {path / 'out.json'})")
    return path


DATASET_ID = integer(1, 999)  # nnU-Net's DatasetXXX
POSITIVE = integer(1)
NON_NEGATIVE = integer(0)
