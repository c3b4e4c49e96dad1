"""`nnsynth train-maskgan`, `nnsynth sample-masks` and `nnsynth maskgan-report`.

Heavy imports (torch, nnunetv2) happen inside the command functions so `nnsynth --help` stays fast.
"""

from __future__ import annotations

import argparse

from nnsynth_gan import options as opt
from nnunet_synth import arguments as arg
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic


def _box(text: str) -> tuple[int, int, int]:
    return opt.voxel_shape(text, "box")


def _common(p: argparse.ArgumentParser) -> None:
    opt.add_dataset_arguments(p, "cross-validation fold of splits_final.json, or 'all' (default 0)")


def _sample_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the fold's maskgan checkpoint)")
    p.add_argument("--seed", type=arg.NON_NEGATIVE, default=0)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser(
        "train-maskgan", help="train the lesion-mask GAN (3D WGAN-GP, volume-conditioned) on a fold",
        description="Train the volume-conditioned lesion-mask WGAN-GP on the lesion masks of the fold's "
        "training cases in $nnUNet_preprocessed. Checkpoints, loss curve and sample mosaics go to "
        "$nnUNet_results/DatasetXXX_Name/nnsynth/. Runs data-parallel under torchrun --nproc_per_node N.")
    _common(t)
    opt.add_steps_arguments(t, 2000, "generator", "maskgan_fold<F>_latest.pt")
    t.add_argument("--batch-size", type=arg.integer(1, 1024), default=4,
                   help="masks per rank and critic step (default 4)")
    t.add_argument("--n-critic", type=arg.integer(1, 100), default=5,
                   help="critic updates per generator update (default 5)")
    t.add_argument("--lr", type=arg.number(0, 1, above=True), default=2e-4, help="Adam learning rate (default 2e-4)")
    t.add_argument("--volume-weight", type=arg.number(0), default=1.0,
                   help="weight of the log-volume consistency loss on the generator (default 1)")
    opt.add_save_arguments(t)
    t.add_argument("--cluster-mm", type=arg.number(0), default=10.0,
                   help="lesion components closer than this (mm) form one training lesion (default 10)")
    t.add_argument("--box", type=_box, default=None,
                   help="lesion box in voxels, N or X,Y,Z (default: holds every training lesion, "
                   "at most the patch size)")
    t.add_argument("--latent-dim", type=arg.POSITIVE, default=None, help="latent size (default 128, as the paper)")
    t.add_argument("--gen-filters", type=arg.POSITIVE, default=None, help="generator filters at the lowest resolution")
    t.add_argument("--n-levels", type=arg.integer(1, 8), default=None, help="2x up/down-sampling levels (default 3)")
    t.add_argument("--final-kernel", type=arg.POSITIVE, default=None,
                   help="kernel of the generator's last convolution (default 7, as the paper; 3 is ~3x faster)")
    opt.add_switch_arguments(t)
    t.set_defaults(func=run_train)

    s = subparsers.add_parser(
        "sample-masks", help="sample lesion masks from a trained mask GAN as NIfTI files",
        description="Write N lesion-centred mask boxes (uint8 NIfTI, voxel size = the dataset's target spacing, "
        "axes in nnU-Net's preprocessed order) and masks.json with requested and obtained volumes.")
    _common(s)
    s.add_argument("--n", type=arg.integer(1, 100000), required=True, help="number of masks")
    s.add_argument("--volume-ml", type=arg.number(0, above=True), default=None,
                   help="requested lesion volume in ml (default: sizes drawn from the training lesions)")
    _sample_outputs(s)
    s.set_defaults(func=run_sample)

    r = subparsers.add_parser(
        "maskgan-report", help="compare generated and real training lesion masks (JSON, markdown, PNGs)",
        description="Volume quantiles and KS statistic, components per case, share of lesion voxels in the "
        "brain and per tissue class (labelmapsTr), occupancy maps, and how well requested volumes are met.")
    _common(r)
    r.add_argument("--n", type=arg.integer(1, 100000), default=200, help="number of generated masks (default 200)")
    _sample_outputs(r)
    r.add_argument("--threshold-at-zero", action="store_true",
                   help="threshold the generator's output at 0 (its volume condition alone) instead of at the "
                        "requested volume, to compare")
    r.set_defaults(func=run_report)


def run_train(args: argparse.Namespace) -> int:
    from nnsynth_gan.maskgan.train import TrainOptions, train_maskgan

    if args.steps < 1:
        raise NNSynthError("--steps must be >= 1")
    model = {k: v for k, v in (("latent_dim", args.latent_dim), ("gen_base_filters", args.gen_filters),
                               ("n_levels", args.n_levels), ("final_kernel", args.final_kernel))
             if v is not None}
    opts = TrainOptions(dataset_id=args.dataset_id, fold=args.fold, steps=args.steps,
                        device=args.device or opt.default_device(), resume=args.resume, plans=args.plans,
                        configuration=args.configuration, batch_size=args.batch_size, n_critic=args.n_critic,
                        lr=args.lr, volume_weight=args.volume_weight, save_every=args.save_every,
                        seed=args.seed, augment=args.augment, cluster_mm=args.cluster_mm, box=args.box,
                        model=model,
                        progress=args.progress)
    train_maskgan(opts)
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    import nibabel as nib
    import numpy as np

    from nnunet_synth.generators.lookup import find_checkpoint
    from nnunet_synth.lesions.maskgan import MaskSampler
    from nnunet_synth.nnunet_io.preprocessed import dataset_fingerprint

    if args.n < 1:
        raise NNSynthError("--n must be >= 1")
    fp = dataset_fingerprint(args.dataset_id, args.plans, args.configuration)
    path = Path(args.checkpoint) if args.checkpoint else find_checkpoint(args.dataset_id, "maskgan", args.fold)
    sampler = MaskSampler.from_checkpoint(path, fp, args.device or opt.default_device())
    masks, requested, _ = sampler.sample_with_volumes(args.n, args.volume_ml, seed=args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*sampler.config.spacing, 1.0])
    entries = []
    for i, (mask, req) in enumerate(zip(masks, requested)):
        name = f"mask_{i:04d}.nii.gz"
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), str(out / name))
        entries.append({"file": name, "requested_ml": float(req), "volume_ml": sampler.volume_ml(mask)})
    rel = [abs(e["volume_ml"] - e["requested_ml"]) / e["requested_ml"] for e in entries]
    summary = {"checkpoint": str(path), "box_shape": list(sampler.box_shape),
               "spacing_mm": list(sampler.config.spacing), "axis_order": "nnU-Net preprocessed (transpose_forward "
               f"{list(fp.transpose_forward)})", "median_relative_volume_error": float(np.median(rel)),
               "masks": entries}
    write_json_atomic(out / "masks.json", summary)
    print(f"wrote {len(entries)} masks to {out} (box {sampler.box_shape}, median relative volume error "
          f"{summary['median_relative_volume_error']:.3f})")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnsynth_gan.maskgan.report import build_report

    if args.n < 2:
        raise NNSynthError("--n must be >= 2")
    report = build_report(args.dataset_id, args.n, Path(args.output), fold=args.fold,
                          checkpoint=Path(args.checkpoint) if args.checkpoint else None, plans=args.plans,
                          configuration=args.configuration, seed=args.seed,
                          device=args.device or opt.default_device(), match_volume=not args.threshold_at_zero)
    print(f"wrote {report['files']['markdown']} and {report['files']['json']}")
    return 0
