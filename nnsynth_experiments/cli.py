"""`nnsynth` sub-commands of nnsynth_experiments (registered through the nnsynth.commands entry point)."""

from __future__ import annotations

import argparse

from nnunet_synth.cli import register_modules

COMMAND_MODULES: tuple[str, ...] = ("nnsynth_experiments.demo", "nnsynth_experiments.runner",
                                     "nnsynth_experiments.preview", "nnsynth_experiments.realism")


def register(subparsers: argparse._SubParsersAction) -> None:
    register_modules(subparsers, COMMAND_MODULES)
