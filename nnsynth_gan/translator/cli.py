"""`nnsynth train-translator` and `nnsynth translator-report` (pix2pix-3D / SPADE-3D).

Heavy imports (torch, nnunetv2) happen inside the command functions so `nnsynth --help` stays fast.
"""

from __future__ import annotations

import argparse

from nnsynth_gan import options as opt
from nnunet_synth import arguments as arg
from nnunet_synth.errors import NNSynthError


def _shape(text: str) -> tuple[int, int, int]:
    return opt.voxel_shape(text, "crop")


def _filters(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError("filters must be comma-separated integers, e.g. 16,32,64") from exc
    if not parts or min(parts) < 1:
        raise argparse.ArgumentTypeError("filters must be positive integers")
    return parts


def _common(p: argparse.ArgumentParser) -> None:
    opt.add_dataset_arguments(p, "cross-validation fold of splits_final.json (default 0)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser(
        "train-translator", help="train a label-map -> MRI translator (pix2pix-3D or SPADE-3D) on a fold",
        description="Train pix2pix-3D (U-Net + PatchGAN, least squares + 10 x L1) or SPADE-3D (SPADE residual "
        "generator with noise + two-scale PatchGAN, hinge + 10 x L1 + 10 x feature matching) on random crops of "
        "(anatomical label map, image) pairs of the fold's training cases in $nnUNet_preprocessed. Label maps "
        "come from $nnUNet_raw/DatasetXXX/labelmapsTr. Checkpoints (<arch>_fold<F>.pt, <arch>_fold<F>_latest.pt), "
        "the loss curve and sample mosaics go to $nnUNet_results/DatasetXXX_Name/nnsynth/. Runs data-parallel "
        "under torchrun --nproc_per_node N.")
    _common(t)
    t.add_argument("--arch", choices=("pix2pix", "spade"), required=True, help="translator architecture")
    opt.add_steps_arguments(t, 5000, "training", "<arch>_fold<F>_latest.pt")
    t.add_argument("--crop", type=_shape, default=(64, 64, 64),
                   help="training crop in voxels, N or X,Y,Z (default 64; a multiple of 2**levels)")
    t.add_argument("--batch-size", type=arg.integer(1, 1024), default=1,
                   help="crops per rank and step (default 1, as the paper)")
    t.add_argument("--lr", type=arg.number(0, 1, above=True), default=2e-4, help="Adam learning rate (default 2e-4)")
    t.add_argument("--l1-weight", type=arg.number(0), default=10.0, help="weight of the L1 loss (default 10)")
    t.add_argument("--fm-weight", type=arg.number(0), default=None,
                   help="weight of discriminator feature matching (default 10 for spade, 0 for pix2pix)")
    t.add_argument("--d-noise", type=arg.number(0), default=0.1,
                   help="std of Gaussian noise on the discriminator's image input, annealed to 0 (default 0.1)")
    t.add_argument("--d-noise-steps", type=arg.NON_NEGATIVE, default=1000,
                   help="steps over which --d-noise anneals (default 1000)")
    t.add_argument("--lesion-fraction", type=arg.number(0, 1), default=0.33,
                   help="share of crops centred on a lesion voxel (default 0.33)")
    opt.add_save_arguments(t)
    t.add_argument("--filters", type=arg.POSITIVE, default=None,
                   help="generator filters at full resolution (default 32)")
    t.add_argument("--max-filters", type=arg.POSITIVE, default=None, help="generator filter cap (default 256)")
    t.add_argument("--levels", type=arg.integer(0, 8), default=None,
                   help="generator 2x down/up-sampling levels (default 4)")
    t.add_argument("--disc-filters", type=_filters, default=None,
                   help="PatchGAN filters per k4 s2 layer (default 32,64,128,256,256 as the paper)")
    t.add_argument("--noise-dim", type=arg.NON_NEGATIVE, default=None,
                   help="SPADE: bottleneck noise channels (default 16)")
    t.add_argument("--spade-hidden", type=arg.POSITIVE, default=None,
                   help="SPADE: channels of the label embedding in each SPADE layer (default 32)")
    t.add_argument("--upsampling", choices=("transpose", "trilinear"), default=None,
                   help="pix2pix: decoder up-sampling (default transpose, as pix2pix)")
    opt.add_switch_arguments(t)
    t.set_defaults(func=run_train)

    r = subparsers.add_parser(
        "translator-report", help="score translators on held-out label maps against the real images",
        description="Render the fold's validation cases' label maps with each translator checkpoint and with the "
        "Gaussian-mixture renderer (fitted on the fold's training cases); MAE, PSNR, SSIM per channel, mean "
        "intensity error per tissue class, lesion-to-healthy contrast, sample variety; report.json, report.md "
        "and side_by_side.png in the output folder.")
    _common(r)
    r.add_argument("--checkpoint", nargs="+", default=None,
                   help="translator checkpoint file(s) (default: the fold's pix2pix and spade checkpoints)")
    r.add_argument("-o", "--output", required=True, help="output folder")
    r.add_argument("--max-cases", type=arg.POSITIVE, default=None, help="use only the first N validation cases")
    r.add_argument("--no-gmm", dest="gmm", action="store_false", help="leave out the Gaussian-mixture renderer")
    r.add_argument("--seed", type=arg.NON_NEGATIVE, default=0)
    r.set_defaults(func=run_report)


def run_train(args: argparse.Namespace) -> int:
    from nnsynth_gan.translator.train import TrainOptions, train_translator

    if args.steps < 1:
        raise NNSynthError("--steps must be >= 1")
    if args.batch_size < 1:
        raise NNSynthError("--batch-size must be >= 1")
    names = (("base_filters", args.filters), ("max_filters", args.max_filters), ("n_levels", args.levels),
             ("disc_filters", args.disc_filters))
    if args.arch == "spade":
        names += (("noise_dim", args.noise_dim), ("spade_hidden", args.spade_hidden))
    elif args.noise_dim is not None or args.spade_hidden is not None:
        raise NNSynthError("--noise-dim and --spade-hidden apply to --arch spade only")
    if args.arch == "pix2pix":
        names += (("upsampling", args.upsampling),)
    elif args.upsampling is not None:
        raise NNSynthError("--upsampling applies to --arch pix2pix only")
    model = {k: v for k, v in names if v is not None}
    opts = TrainOptions(dataset_id=args.dataset_id, arch=args.arch, fold=args.fold, steps=args.steps,
                        device=args.device or opt.default_device(), resume=args.resume, plans=args.plans,
                        configuration=args.configuration, crop=args.crop, batch_size=args.batch_size, lr=args.lr,
                        l1_weight=args.l1_weight, fm_weight=args.fm_weight, d_noise=args.d_noise,
                        d_noise_steps=args.d_noise_steps, lesion_fraction=args.lesion_fraction,
                        save_every=args.save_every, seed=args.seed, augment=args.augment, model=model,
                        progress=args.progress)
    train_translator(opts)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnsynth_gan.translator.report import build_report

    report = build_report(args.dataset_id, Path(args.output),
                          [Path(p) for p in args.checkpoint] if args.checkpoint else None, fold=args.fold,
                          plans=args.plans, configuration=args.configuration, seed=args.seed,
                          device=args.device or opt.default_device(), max_cases=args.max_cases, include_gmm=args.gmm)
    print(f"wrote {report['files']['markdown']}, {report['files']['json']} and {report['files']['figure']}")
    return 0
