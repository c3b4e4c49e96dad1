"""`nnsynth shrink-plans`: small nnU-Net plans so that training fits a CPU."""

from __future__ import annotations

import argparse

from nnunet_synth import arguments as arg


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "shrink-plans", help="write a copy of the nnU-Net plans with a small network and patch",
        description="Write $nnUNet_preprocessed/DatasetXXX/NAME.json: the source plans with a smaller U-Net, "
                    "patch and batch for one configuration. Same preprocessed data; train with -p NAME.")
    p.add_argument("-d", "--dataset-id", type=arg.DATASET_ID, required=True)
    p.add_argument("--plans-name", required=True, type=arg.name("--plans-name"),
                   help="name of the new plans (file NAME.json)")
    p.add_argument("--source-plans", default="nnUNetPlans", type=arg.name("--source-plans"),
                   help="plans to copy (default: nnUNetPlans)")
    p.add_argument("-c", "--configuration", default="3d_fullres")
    p.add_argument("--patch-size", type=arg.POSITIVE, nargs="+", default=None,
                   help="patch size; default: the source patch capped at --max-patch, divisible by 2^(stages-1)")
    p.add_argument("--max-patch", type=arg.POSITIVE, default=48)
    p.add_argument("--stages", type=arg.integer(2, 10), default=4, help="resolution stages of the U-Net (default 4)")
    p.add_argument("--base-features", type=arg.POSITIVE, default=8)
    p.add_argument("--max-features", type=arg.POSITIVE, default=64)
    p.add_argument("--batch-size", type=arg.POSITIVE, default=2)
    p.add_argument("--convs-per-stage", type=arg.POSITIVE, default=2)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nnunet_synth.nnunet_io.folders import require_dataset
    from nnunet_synth.nnunet_io.plans import ShrinkSpec, write_shrunk_plans

    spec = ShrinkSpec(patch_size=tuple(args.patch_size) if args.patch_size else None, max_patch=args.max_patch,
                      n_stages=args.stages, base_features=args.base_features, max_features=args.max_features,
                      batch_size=args.batch_size, convs_per_stage=args.convs_per_stage)
    target = write_shrunk_plans(require_dataset(args.dataset_id, "nnUNet_preprocessed"), args.source_plans,
                                args.plans_name, args.configuration, spec)
    print(target)
    return 0
