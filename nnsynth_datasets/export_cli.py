"""`nnsynth export`: write real + synthetic cases as a new nnU-Net raw dataset (offline augmentation)."""

from __future__ import annotations

import argparse

from nnunet_synth import arguments as arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a new raw dataset: the real cases plus N synthetic ones, with leak-free splits",
        description="Offline export (the seed paper's workflow). Synthetic cases of fold k come from fold k's "
                    "training cases and appear only in fold k's training set of the new splits_final.json "
                    "($nnUNet_preprocessed/DatasetOUT_NAME/), so every validation fold stays real. "
                    "Needs the source planned and preprocessed, and labelmapsTr/.")
    p.add_argument("-d", "--dataset-id", type=arg.DATASET_ID, required=True, help="source dataset")
    p.add_argument("--n", type=arg.integer(1, 100000), required=True,
                   help="synthetic cases in total (spread over the folds)")
    p.add_argument("--out-id", type=arg.DATASET_ID, required=True, help="id of the new dataset")
    p.add_argument("--name", default=None, type=arg.name("--name"),
                   help="name of the new dataset (default: <source name>Synth)")
    p.add_argument("--folds", type=arg.NON_NEGATIVE, nargs="+", default=None,
                   help="folds to make cases for (default: all)")
    p.add_argument("--plans", default="nnUNetPlans")
    p.add_argument("-c", "--configuration", default="3d_fullres")
    p.add_argument("--seed", type=arg.NON_NEGATIVE, default=0)
    p.add_argument("--lesions", default="real", help="lesion source: real (default) or maskgan")
    p.add_argument("--renderer", default="gmm",
                   help="gmm (default), randomized, pix2pix, spade (whole synthetic scans) or inpaint, "
                        "inpaint-pix2pix, inpaint-spade (the lesion written into a real training case of the fold)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with --out-id")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nnsynth_datasets.export import export_dataset

    out = export_dataset(args.dataset_id, args.n, args.out_id, args.folds, args.plans, args.configuration,
                         args.name, args.seed, args.overwrite, lesions=args.lesions, renderer=args.renderer)
    print(f"wrote {out}")
    return 0
