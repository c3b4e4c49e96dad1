#!/usr/bin/env python
"""Throughput of the label-map -> image renderers: generated cases per second, per volume size.

Measures exactly what the synthesis engine pays per synthetic case: ``renderer.render(labelmap, rng)``
(one-hot encoding, padding to the generator's size factor, the network, intensity mapping, copy back
to numpy), for pix2pix-3D, SPADE-3D and the Gaussian-mixture renderer, at the seed paper's volume size
128x128x32 and at the dataset's nnU-Net patch size. Translators come from checkpoints (``--checkpoint``)
and/or are built untrained with the default (paper-sized) configs (``--default-configs``): speed does not
depend on the weights. Label maps are a real case's, centre-cropped or padded to each size.

    python scripts/bench_translators.py -d 978 --checkpoint $nnUNet_results/Dataset978_*/nnsynth/spade_fold0.pt
    python scripts/bench_translators.py --default-configs --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nnsynth_gan.translator.data import anatomy_classes, crop_or_pad, fit_space, load_cases
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.folds import fold_case_ids
from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
from nnunet_synth.renderers import GaussianMixtureRenderer
from nnunet_synth.renderers.translator import TRANSLATOR_KINDS, TranslatorRenderer, TranslatorSpace, translator_classes

PAPER_SIZE = (128, 128, 32)
DEMO_LABELS = {"background": 0, "csf": 1, "gray_matter": 2, "white_matter": 3, "lesion": 4}


def _size(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("size must be X,Y,Z")
    return tuple(parts)


def phantom_pair(shape: tuple[int, int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid 'brain' label map (CSF/GM/WM/lesion) and a matching two-channel image, when no dataset is given."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    r = np.sqrt((grid ** 2).sum(0))
    lm = np.select([r < 0.15, r < 0.6, r < 0.8, r < 0.9], [1, 3, 2, 1], 0).astype(np.int16)
    lm[(np.abs(grid[0] - 0.4) < 0.1) & (np.abs(grid[1]) < 0.1) & (lm >= 2)] = 4
    image = np.stack([lm * 0.5 + rng.normal(0, 0.1, shape), -lm * 0.3 + rng.normal(0, 0.1, shape)]).astype(np.float32)
    return image, lm


def centre_fit(labelmap: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    start = [(s - n) // 2 for s, n in zip(labelmap.shape, size)]
    return crop_or_pad(labelmap, start, size, -1)


def untrained(kind: str, space: TranslatorSpace, device: str) -> TranslatorRenderer:
    config_cls, gen_cls = translator_classes(kind)
    torch.manual_seed(0)
    config = config_cls(in_channels=space.label_channels, out_channels=space.num_channels)
    return TranslatorRenderer(kind, gen_cls(config), space, device=device)


def time_renderer(renderer, labelmap: np.ndarray, repeats: int, device: str) -> list[float]:
    rng = np.random.default_rng(0)
    renderer.render(labelmap, rng)  # warm-up (allocator, oneDNN/cuDNN kernel selection)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        renderer.render(labelmap, rng)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-d", "--dataset-id", type=int, default=None,
                   help="preprocessed dataset: real label maps, its patch size, GMM fitted on its training cases")
    p.add_argument("--fold", default="0")
    p.add_argument("--checkpoint", nargs="*", default=[], help="translator checkpoints to time")
    p.add_argument("--default-configs", action="store_true",
                   help="also time untrained pix2pix and SPADE with the default (paper-sized) configs")
    p.add_argument("--sizes", type=_size, nargs="*", default=None,
                   help="volume sizes X,Y,Z (default: 128,128,32 and the dataset's patch size)")
    p.add_argument("--repeats", type=int, default=3, help="timed renders per renderer and size")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("-o", "--output", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise NNSynthError("--device cuda requested but no CUDA device is available")

    rng = np.random.default_rng(0)
    sizes = list(args.sizes) if args.sizes else [PAPER_SIZE]
    fingerprint = None
    if args.dataset_id is not None:
        pre = open_preprocessed(args.dataset_id)
        fingerprint = pre.fingerprint
        train_ids, _ = fold_case_ids(pre, args.fold)
        cases = load_cases(pre, train_ids[: min(len(train_ids), 8)])
        source = max(cases, key=lambda c: c.lesion.size).labelmap
        space = fit_space(cases, anatomy_classes(pre))
        gmm = GaussianMixtureRenderer.fit([(c.image, c.labelmap) for c in cases])
        if not args.sizes:
            sizes.append(tuple(int(s) for s in pre.configuration_manager.patch_size))
        data_note = f"{pre.name}: label map of {max(cases, key=lambda c: c.lesion.size).case_id}"
    else:
        image, source = phantom_pair((96, 112, 80), rng)
        space = TranslatorSpace(labels=DEMO_LABELS, low=[-1.0, -2.0], high=[3.0, 1.0])
        gmm = GaussianMixtureRenderer.fit([(image, source)])
        data_note = "synthetic ellipsoid label map (no --dataset-id)"

    renderers: dict[str, object] = {}
    for path in args.checkpoint:
        r = TranslatorRenderer.from_checkpoint(path, fingerprint, args.device)
        params = sum(t.numel() for t in r.generator.parameters())
        renderers[f"{r.kind} ({Path(path).name}, {params / 1e6:.2f} M)"] = r
    if args.default_configs:
        for kind in TRANSLATOR_KINDS:
            r = untrained(kind, space, args.device)
            params = sum(t.numel() for t in r.generator.parameters())
            renderers[f"{kind} (default config, {params / 1e6:.2f} M)"] = r
    renderers["gaussian_mixture"] = gmm
    if len(renderers) == 1:
        print("note: no --checkpoint and no --default-configs: timing the Gaussian-mixture renderer only",
              file=sys.stderr)

    rows = []
    for size in sizes:
        labelmap = centre_fit(source, size)
        for name, renderer in renderers.items():
            dev = "cpu" if name == "gaussian_mixture" else args.device
            times = time_renderer(renderer, labelmap, args.repeats, dev)
            med, best = statistics.median(times), min(times)
            rows.append({"size": list(size), "renderer": name, "device": dev, "seconds_per_case": med,
                         "cases_per_second": 1.0 / med, "best_cases_per_second": 1.0 / best, "times": times})
            print(f"{'x'.join(map(str, size)):>12}  {name:<48} {dev:<4} {med:8.3f} s/case  {1 / med:8.2f} cases/s "
                  f"(best {1 / best:.2f})", flush=True)
    result = {"host": platform.node(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
              "data": data_note, "repeats": args.repeats, "rows": rows}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NNSynthError as exc:
        print(f"bench_translators: error: {exc}", file=sys.stderr)
        sys.exit(2)
