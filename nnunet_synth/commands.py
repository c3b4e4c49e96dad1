"""`nnsynth` sub-commands that belong to nnunet_synth itself."""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES = ("nnunet_synth.plans_cli", "nnunet_synth.evaluate_cli", "nnunet_synth.demo",
                   "nnunet_synth.experiment")


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
