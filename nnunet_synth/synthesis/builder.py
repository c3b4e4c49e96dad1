"""Builds the synthesis engine of one fold from its training cases.

The steps, in data-path order: the tissue classes (``synthesis.anatomy``), the lesion source and the
renderer by name from the registry (``synthesis.registry``: ``real`` | ``maskgan`` lesions, ``gmm`` |
``pix2pix`` | ``spade`` whole-scan renderers or ``inpaint`` | ``inpaint-pix2pix`` | ``inpaint-spade``
painters), then the engine: the whole-scan engine renders a label map, the inpainting engine paints the
lesion into the real host image. The training cases (``nnunet_io.training_cases``)
carry the label maps on the preprocessed grid; only the fold's training cases are read. Learned
generators must carry this dataset's fingerprint, and a missing one stops with the command that trains it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nnunet_synth.nnunet_io.training_cases import TrainingCases
from nnunet_synth.synthesis.anatomy import AnatomyClasses
from nnunet_synth.synthesis.engine import SynthesisEngine
from nnunet_synth.synthesis.inpainting import InpaintingEngine
from nnunet_synth.synthesis.registry import BuildContext, build_parts, is_inpainting


def build_engine(cases: TrainingCases, lesions: str = "real", renderer: str = "gmm", fold: int | str = 0,
                 seed: int = 0, device: str = "cpu", foreground_label: int = 1,
                 log: Callable[[str], None] = print) -> SynthesisEngine | InpaintingEngine:
    """The engine for a fold's training cases, with the named lesion source and renderer."""
    start = time.perf_counter()
    classes = AnatomyClasses.from_dataset_json(cases.pre.dataset_json)
    ctx = BuildContext(cases=cases, classes=classes, parenchyma=classes.parenchyma, fold=fold, seed=seed,
                       device=device, foreground_label=foreground_label, log=log)
    source, render, note = build_parts(ctx, lesions, renderer)
    if is_inpainting(renderer):
        engine = InpaintingEngine(labelmaps=cases.labelmaps, load_host=cases.load, lesion_source=source,
                                  painter=render, classes=classes, foreground_label=foreground_label)
    else:
        engine = SynthesisEngine(labelmaps=cases.labelmaps, lesion_source=source, renderer=render, classes=classes)
    log(f"nnsynth: synthesis engine ready in {time.perf_counter() - start:.1f} s: {len(cases.labelmaps)} "
        f"anatomies, {note}")
    return engine
