"""Sampling speed of the mask GAN (masks/s through ``MaskSampler.sample``, binarized numpy masks).

Shapes: the seed paper's 128x128x32 (5 up-sampling levels from 4x4x1, latent 128, final conv k7),
the dataset's nnU-Net patch size (``-d ID``, read from the plans) or ``--patch X Y Z``, and the box of a
trained checkpoint (``--checkpoint``). Speed does not depend on the weights, so untrained generators
stand in where no checkpoint is given.

    python scripts/bench_maskgan.py -d 977 --threads 1 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nnunet_synth.lesions.maskgan import LocationPrior, MaskSampler
from nnunet_synth.models.maskgan import MaskGANConfig, MaskGenerator


def untrained_sampler(box: tuple[int, ...], n_levels: int, final_kernel: int, device: str) -> MaskSampler:
    cfg = MaskGANConfig(box_shape=box, n_levels=n_levels, final_kernel=final_kernel)
    return MaskSampler(MaskGenerator(cfg), LocationPrior(np.full((1, 3), 0.5)), np.zeros(1), device=device)


def levels_for(shape: tuple[int, ...]) -> int:
    """Up-sampling levels so that the smallest axis starts at >= 2 voxels (at least 3 levels)."""
    return max(3, int(np.floor(np.log2(max(min(shape), 2) / 2))))


def bench(sampler: MaskSampler, batch: int, min_seconds: float) -> dict[str, float]:
    sampler.sample(batch, volume_ml=None, seed=0, batch_size=batch)  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        sampler.sample(batch, seed=n, batch_size=batch)
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and n >= 2 * batch:
            break
    return {"masks": n, "seconds": elapsed, "masks_per_s": n / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--dataset-id", type=int, default=None, help="take the patch size from its plans")
    parser.add_argument("--plans", default="nnUNetPlans")
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--patch", type=int, nargs=3, default=None, help="patch size when no dataset is given")
    parser.add_argument("--checkpoint", type=Path, default=None, help="also time this maskgan checkpoint")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=10.0, help="minimum timing per case")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cases: list[tuple[str, MaskSampler]] = [("paper 128x128x32 (k7)", untrained_sampler((128, 128, 32), 5, 7,
                                                                                           args.device))]
    patch = args.patch
    if args.dataset_id is not None:
        from nnunet_synth.nnunet_io.preprocessed import dataset_fingerprint

        patch = list(dataset_fingerprint(args.dataset_id, args.plans, args.configuration).patch_size)
    if patch:
        shape = tuple(int(s) for s in patch)
        cases.append((f"patch {'x'.join(map(str, shape))} (k7)",
                      untrained_sampler(shape, levels_for(shape), 7, args.device)))
    if args.checkpoint:
        s = MaskSampler.from_checkpoint(args.checkpoint, device=args.device)
        cases.append((f"checkpoint box {'x'.join(map(str, s.box_shape))} (k{s.config.final_kernel})", s))

    results = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")
    print(f"{'case':40s} {'batch':>5s} {'masks/s':>9s} {'ms/mask':>8s}")
    for name, sampler in cases:
        for batch in args.batch:
            r = bench(sampler, batch, args.seconds)
            results.append({"case": name, "box": list(sampler.box_shape), "batch": batch, **r})
            print(f"{name:40s} {batch:5d} {r['masks_per_s']:9.2f} {1000 / r['masks_per_s']:8.1f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": torch.get_num_threads(), "device": args.device,
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
