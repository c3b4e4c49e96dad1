"""Generators shipped inside the package: a mask GAN and a pix2pix translator for the demo cohort.

They were trained with the project's own commands (`scripts/build_default_generators.py`) on the
offline demo cohort (`nnsynth demo-cohort`, default spacing); each has a model card next to it. A
dataset gets them only when no checkpoint of its own exists, it is a demo cohort (dataset.json made
by `nnsynth demo-cohort`) and its preprocessed space matches the one they were trained in; every
other dataset gets a message that says how to train its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.fingerprint import DatasetFingerprint

DEFAULTS_DIR = Path(__file__).resolve().parent
FILES = {"maskgan": "maskgan_demo.pt", "pix2pix": "pix2pix_demo.pt"}
DEMO_MARKER = "nnsynth_demo_cohort"  # key that `nnsynth demo-cohort` writes into dataset.json


def default_checkpoint(kind: str) -> Path | None:
    path = DEFAULTS_DIR / FILES.get(kind, "")
    return path if kind in FILES and path.is_file() else None


def model_card(kind: str) -> Path:
    return DEFAULTS_DIR / f"MODEL_CARD_{kind}.md"


def embedded_for(kind: str, fingerprint: DatasetFingerprint, dataset_json: dict,
                 train_hint: str) -> tuple[Path, DatasetFingerprint]:
    """The embedded checkpoint of ``kind`` for this dataset and the fingerprint to check it against.

    The dataset name is the one field not compared (the demo cohort may live under any id); everything
    that defines the preprocessed space must match. Raises an NNSynthError that says why not and how to
    train a checkpoint of one's own (``train_hint``).
    """
    from nnunet_synth.generators.checkpoint import load_checkpoint

    path = default_checkpoint(kind)
    if path is None:
        raise NNSynthError(f"no {kind} checkpoint for this dataset and no embedded default {kind}: {train_hint}")
    if DEMO_MARKER not in dataset_json:
        raise NNSynthError(f"no {kind} checkpoint for {fingerprint.dataset_name}: the embedded default {kind} only "
                           f"serves the nnsynth demo cohort, so train one for this dataset: {train_hint}")
    shipped = load_checkpoint(path, kind=kind).dataset_fingerprint()
    as_demo = dataclasses.replace(fingerprint, dataset_name=shipped.dataset_name)
    diff = shipped.differences(as_demo)
    if diff:
        details = "; ".join(f"{k}: embedded {a!r} vs dataset {b!r}" for k, (a, b) in diff.items())
        raise NNSynthError(f"no {kind} checkpoint for {fingerprint.dataset_name}, and the embedded default {kind} "
                           f"was trained for another demo-cohort set-up ({details}): {train_hint}")
    return path, as_demo
