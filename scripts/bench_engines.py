"""Milliseconds per synthetic case of each synthesis mode, single-threaded, on a preprocessed dataset.

    nnUNet_raw=... nnUNet_preprocessed=... nnUNet_results=... python scripts/bench_engines.py [DATASET_ID]

Each engine is built on the dataset's first 10 training cases (as a fold's trainer builds it) and makes
10 cases after one warm-up, through to nnU-Net's load_case form. Learned modes use the dataset's checkpoints
or the embedded demo defaults.
"""

import sys
import time

import numpy as np
import torch

from nnunet_synth.feeding.nnunet_format import to_nnunet_case
from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
from nnunet_synth.nnunet_io.training_cases import TrainingCases
from nnunet_synth.synthesis.builder import build_engine

MODES = (("real", "gmm"), ("real", "inpaint"), ("maskgan", "inpaint"), ("real", "randomized"),
         ("maskgan", "inpaint-pix2pix"), ("maskgan", "pix2pix"))


def main() -> None:
    torch.set_num_threads(1)
    pre = open_preprocessed(int(sys.argv[1]) if len(sys.argv) > 1 else 990)
    cases = TrainingCases.of(pre, pre.identifiers()[:10])
    for lesions, renderer in MODES:
        engine = build_engine(cases, lesions, renderer, seed=0, log=lambda *a: None)
        rng = np.random.default_rng(0)
        to_nnunet_case(engine.make_case(rng))
        start, n = time.perf_counter(), 10
        for _ in range(n):
            to_nnunet_case(engine.make_case(rng))
        print(f"{lesions} lesions + {renderer}: {(time.perf_counter() - start) / n * 1000:.0f} ms/case", flush=True)


if __name__ == "__main__":
    main()
