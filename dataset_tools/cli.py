"""`nnsynth` sub-commands of dataset_tools (registered through the nnsynth.commands entry point)."""

from __future__ import annotations

import argparse
import importlib

# Each module defines add_parser(subparsers); heavy imports stay inside the command functions so
# that `nnsynth --help` stays fast.
COMMAND_MODULES = (
    "dataset_tools.demo_cohort_cli",
    "dataset_tools.convert_cli",
    "dataset_tools.labelmaps_cli",
    "dataset_tools.export_cli",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
