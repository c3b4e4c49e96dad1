"""The trainer's setup of the synthesis engine walks the data path once, package by package.

A profiler records every call into the project's own code during
``nnUNetTrainerSynth.get_tr_and_val_datasets`` on the phantom dataset; calls that stay inside one
package, and generator resumptions (cases streamed one at a time), are not counted as entries.
"""

import inspect
import json
import sys
from pathlib import Path

import torch

ROOT = str(Path(__file__).resolve().parents[1])


def _package(filename: str) -> str | None:
    if not filename.startswith(ROOT) or "/.venv/" in filename or "/tests/" in filename:
        return None
    parts = filename[len(ROOT) + 1:-3].split("/")
    return ".".join(parts[:2]) if parts[0] == "nnunet_synth" else parts[0]


def test_engine_setup_enters_each_package_once_in_data_path_order(phantom_env):
    import nnsynth_trainers.synth_trainer as mod

    pre = phantom_env["nnUNet_preprocessed"] / "Dataset900_Phantom"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [16, 16, 16]
    plans["continue_training"] = False
    trainer = mod.nnUNetTrainerSynth(plans, "3d_fullres", 0, json.loads((pre / "dataset.json").read_text()),
                                     torch.device("cpu"))
    trainer.initialize()
    entries = []

    def profile(frame, event, arg):
        if event != "call" or frame.f_code.co_flags & inspect.CO_GENERATOR:
            return
        callee = _package(frame.f_code.co_filename)
        if callee is None:
            return
        caller = frame.f_back
        while caller is not None and _package(caller.f_code.co_filename) is None:
            caller = caller.f_back
        if caller is None or _package(caller.f_code.co_filename) != callee:
            entries.append(callee)

    sys.setprofile(profile)
    try:
        trainer.get_tr_and_val_datasets()
    finally:
        sys.setprofile(None)
        trainer.synth_supply.close()
    assert entries == ["nnsynth_trainers", "nnunet_synth.nnunet_io", "nnunet_synth.synthesis",
                       "nnunet_synth.lesions", "nnunet_synth.renderers", "nnunet_synth.feeding"]
