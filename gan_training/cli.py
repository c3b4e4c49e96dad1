"""`nnsynth` sub-commands of gan_training (registered through the nnsynth.commands entry point)."""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES: tuple[str, ...] = ("gan_training.maskgan_cli", "gan_training.translator_cli")


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
