"""The `nnsynth` command line.

Sub-commands live next to the code they drive. Sibling packages (nnsynth_trainers, nnsynth_datasets,
nnsynth_gan) contribute theirs through the ``nnsynth.commands`` entry-point group, so this package
never imports them (docs/ARCHITECTURE.md: dependencies point towards nnunet_synth only).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from nnunet_synth import __version__
from nnunet_synth.errors import NNSynthError

ENTRY_POINT_GROUP = "nnsynth.commands"


def register_modules(subparsers: argparse._SubParsersAction, modules: Sequence[str]) -> None:
    """Let each module add its sub-command (``add_parser``); modules are imported only here."""
    for name in modules:
        importlib.import_module(name).add_parser(subparsers)


class UsageError(Exception):
    """A bad command line, reported like every other refusal: one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors turned into one ``nnsynth CMD: error: ...`` line (no usage dump)."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nnsynth",
        description="Synthetic stroke MRI for nnU-Net v2. Paths come from nnU-Net's environment "
        "variables nnUNet_raw, nnUNet_preprocessed and nnUNet_results.",
    )
    parser.add_argument("--version", action="version", version=f"nnsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        result = args.func(args)
    except NNSynthError as exc:
        print(f"nnsynth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
