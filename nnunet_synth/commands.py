"""`nnsynth` sub-commands of nnunet_synth itself (registered through the nnsynth.commands entry point)."""

from __future__ import annotations

import argparse

from nnunet_synth.cli import register_modules

COMMAND_MODULES: tuple[str, ...] = ("nnunet_synth.nnunet_io.plans_cli", "nnunet_synth.evaluation.cli")


def register(subparsers: argparse._SubParsersAction) -> None:
    register_modules(subparsers, COMMAND_MODULES)
