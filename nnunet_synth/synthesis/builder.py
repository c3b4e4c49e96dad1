"""Builds the synthesis engine of one fold from the preprocessed-dataset handle.

The steps, in data-path order: the fold's anatomical label maps on the preprocessed grid
(``nnunet_io.labelmap_grid``), the tissue classes (``synthesis.anatomy``), the lesion source and the
renderer by name from the registry (``synthesis.registry``: ``real`` | ``maskgan`` lesions, ``gmm`` |
``pix2pix`` | ``spade`` renderers), then the engine. Only the fold's training cases are read; learned
generators must carry this dataset's fingerprint, and a missing one stops with the command that
trains it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nnunet_synth.nnunet_io.labelmap_grid import preprocessed_labelmaps
from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset
from nnunet_synth.synthesis.anatomy import AnatomyClasses
from nnunet_synth.synthesis.engine import SynthesisEngine
from nnunet_synth.synthesis.registry import LESION_SOURCES, RENDERERS, BuildContext, check_names


def build_engine(pre: PreprocessedDataset, case_ids: list[str], dataset: Any = None, lesions: str = "real",
                 renderer: str = "gmm", fold: int | str = 0, seed: int = 0, device: str = "cpu",
                 foreground_label: int = 1, log: Callable[[str], None] = print) -> SynthesisEngine:
    """The engine for the training cases ``case_ids`` of ``fold``; ``dataset``: nnU-Net's dataset holding them
    (default: opened from the handle)."""
    check_names(lesions, renderer)
    start = time.perf_counter()
    labelmaps = {k: v[0] for k, v in preprocessed_labelmaps(pre, list(case_ids)).items()}
    ctx = BuildContext(pre=pre, dataset=dataset if dataset is not None else pre.load_dataset(list(case_ids)),
                       case_ids=list(case_ids), classes=AnatomyClasses.from_dataset_json(pre.dataset_json),
                       labelmaps=labelmaps, fold=fold, seed=seed, device=device,
                       foreground_label=foreground_label, log=log)
    source, lesion_note = LESION_SOURCES[lesions](ctx)
    render, render_note = RENDERERS[renderer](ctx)
    engine = SynthesisEngine(labelmaps=labelmaps, lesion_source=source, renderer=render, classes=ctx.classes)
    log(f"nnsynth: synthesis engine ready in {time.perf_counter() - start:.1f} s: {len(labelmaps)} anatomies, "
        f"{lesion_note}, {render_note}")
    return engine
