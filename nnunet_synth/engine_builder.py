"""Builds a SynthesisEngine from an nnU-Net preprocessed dataset (the fold's training cases only)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from nnunet_synth.anatomy import AnatomyClasses, preprocessed_labelmaps
from nnunet_synth.lesion_bank import extract_lesion_case
from nnunet_synth.renderers import GaussianMixtureRenderer
from nnunet_synth.synthesis import SynthesisEngine


def build_engine(dataset, case_ids: list[str], raw_dataset: Path, preprocessed_dataset: Path, plans: dict,
                 configuration: str, foreground_label: int = 1, max_fit_cases: int = 20,
                 seed: int = 0, log=print) -> SynthesisEngine:
    """dataset: an nnU-Net dataset (load_case) holding at least case_ids."""
    start = time.perf_counter()
    dataset_json = json.loads((Path(preprocessed_dataset) / "dataset.json").read_text())
    classes = AnatomyClasses.from_dataset_json(dataset_json)
    labelmaps = {k: v[0] for k, v in preprocessed_labelmaps(Path(raw_dataset), Path(preprocessed_dataset),
                                                            plans, configuration, case_ids).items()}
    rng = np.random.default_rng(seed)
    fit_ids = list(case_ids) if len(case_ids) <= max_fit_cases else \
        sorted(rng.choice(case_ids, max_fit_cases, replace=False).tolist())
    lesion_cases, fit_pairs = [], []
    for case in case_ids:
        data, seg, _, _ = dataset.load_case(case)
        seg = np.asarray(seg[0])
        lm = labelmaps[case]
        if lm.shape != seg.shape:
            raise ValueError(f"label map of {case} has shape {lm.shape} on the preprocessed grid, "
                             f"the preprocessed case has {seg.shape}: rebuild the label-map cache")
        found = extract_lesion_case(case, seg, np.isin(lm, classes.parenchyma), foreground_label)
        if found is not None:
            lesion_cases.append(found)
        if case in fit_ids:
            fit_pairs.append((np.asarray(data), lm))
    renderer = GaussianMixtureRenderer.fit(fit_pairs, seed=seed)
    engine = SynthesisEngine(labelmaps=labelmaps, lesion_cases=lesion_cases, renderer=renderer,
                             classes=classes, foreground_label=foreground_label)
    log(f"nnsynth: synthesis engine ready in {time.perf_counter() - start:.1f} s: "
        f"{len(labelmaps)} anatomies, {len(lesion_cases)} lesion sources, Gaussian-mixture renderer "
        f"fitted on {len(fit_pairs)} cases")
    return engine
