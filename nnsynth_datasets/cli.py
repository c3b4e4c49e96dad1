"""`nnsynth` sub-commands of nnsynth_datasets (registered through the nnsynth.commands entry point)."""

from __future__ import annotations

import argparse

from nnunet_synth.cli import register_modules

# Each module defines add_parser(subparsers); heavy imports stay inside the command functions so
# that `nnsynth --help` stays fast.
COMMAND_MODULES = (
    "nnsynth_datasets.demo_cohort.cli",
    "nnsynth_datasets.convert.cli",
    "nnsynth_datasets.labelmaps.cli",
    "nnsynth_datasets.export_cli",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    register_modules(subparsers, COMMAND_MODULES)
