"""`nnsynth` sub-commands of the trainers package (registered through the nnsynth.commands entry point)."""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES: tuple[str, ...] = ("trainers.trainer_path_cli",)


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
