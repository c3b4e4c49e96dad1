"""`nnsynth trainer-path`: print the folder for nnUNet_extTrainer."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trainer-path", help="print the folder to put in nnUNet_extTrainer",
        description="Print the folder that holds the nnU-Net trainer re-exports of nnunet-synth. Use it as "
                    "export nnUNet_extTrainer=$(nnsynth trainer-path), then "
                    "nnUNetv2_train DATASET 3d_fullres FOLD -tr nnUNetTrainerSynth. Set it for "
                    "nnUNetv2_predict too.")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nnsynth_trainers.registration import trainer_path

    print(trainer_path())
    return 0
