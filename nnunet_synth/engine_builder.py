"""Builds a SynthesisEngine from an nnU-Net preprocessed dataset (the fold's training cases only).

Lesion sources: ``real`` (components of other training cases) or ``maskgan`` (the trained mask GAN).
Renderers: ``gmm`` (Gaussian mixture, fitted here, needs no training), ``pix2pix`` or ``spade``
(trained translators). Learned generators are looked up in ``$nnUNet_results/DatasetXXX/nnsynth/``
for the fold and must carry this dataset's fingerprint; a missing one stops with the command that
trains it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from nnunet_synth.anatomy import AnatomyClasses, preprocessed_labelmaps
from nnunet_synth.errors import NNSynthError
from nnunet_synth.lesion_bank import extract_lesion_case
from nnunet_synth.renderers import GaussianMixtureRenderer
from nnunet_synth.synthesis import MaskGANLesionSource, RealLesionSource, SynthesisEngine

LESION_SOURCES = ("real", "maskgan")
RENDERERS = ("gmm", "pix2pix", "spade")


def _learned_generator(kind: str, dataset_id: int | None, fold, plans_name: str, configuration: str,
                       device: str, log=print):
    """The fold's own checkpoint, else the embedded default when the dataset is the demo cohort."""
    from nnunet_synth.checkpoint import find_checkpoint
    from nnunet_synth.fingerprint import open_preprocessed

    if dataset_id is None:
        raise NNSynthError(f"the {kind} generator needs the dataset id to find its checkpoint")
    pre = open_preprocessed(dataset_id, plans_name, configuration, require_data=False)
    fingerprint = pre.fingerprint
    try:
        path = find_checkpoint(dataset_id, kind, fold)
    except NNSynthError as missing:
        from nnunet_synth.default_generators import embedded_for, model_card

        command = ("nnsynth train-maskgan" if kind == "maskgan" else f"nnsynth train-translator --arch {kind}")
        path, fingerprint = embedded_for(kind, fingerprint, pre.dataset_json,
                                         f"{missing} ({command} -d {dataset_id} --fold {fold})")
        log(f"nnsynth: no {kind} checkpoint of this dataset for fold {fold}; using the embedded default "
            f"trained on the demo cohort ({model_card(kind)})")
    if kind == "maskgan":
        from nnunet_synth.lesion_sampling import MaskSampler

        return MaskSampler.from_checkpoint(path, fingerprint=fingerprint, device=device), path
    from nnunet_synth.translator_renderer import TranslatorRenderer

    return TranslatorRenderer.from_checkpoint(path, fingerprint=fingerprint, device=device), path


def build_engine(dataset, case_ids: list[str], raw_dataset: Path, preprocessed_dataset: Path, plans: dict,
                 configuration: str, foreground_label: int = 1, max_fit_cases: int = 20,
                 seed: int = 0, log=print, lesions: str = "real", renderer: str = "gmm",
                 dataset_id: int | None = None, fold: int | str = 0, device: str = "cpu") -> SynthesisEngine:
    """dataset: an nnU-Net dataset (load_case) holding at least case_ids."""
    if lesions not in LESION_SOURCES or renderer not in RENDERERS:
        raise NNSynthError(f"lesion source must be one of {LESION_SOURCES} and renderer one of {RENDERERS}, "
                           f"got {lesions!r} / {renderer!r}")
    start = time.perf_counter()
    dataset_json = json.loads((Path(preprocessed_dataset) / "dataset.json").read_text())
    classes = AnatomyClasses.from_dataset_json(dataset_json)
    labelmaps = {k: v[0] for k, v in preprocessed_labelmaps(Path(raw_dataset), Path(preprocessed_dataset),
                                                            plans, configuration, case_ids).items()}
    rng = np.random.default_rng(seed)
    fit_ids = set(case_ids if len(case_ids) <= max_fit_cases else rng.choice(case_ids, max_fit_cases, replace=False))
    lesion_cases, fit_pairs = [], []
    for case in case_ids:
        data, seg, _, _ = dataset.load_case(case)
        seg = np.asarray(seg[0])
        lm = labelmaps[case]
        if lm.shape != seg.shape:
            raise NNSynthError(f"label map of {case} has shape {lm.shape} on the preprocessed grid, "
                               f"the preprocessed case has {seg.shape}: delete the nnsynth_labelmaps_* cache in "
                               f"{preprocessed_dataset} and train again")
        found = extract_lesion_case(case, seg, np.isin(lm, classes.parenchyma), foreground_label)
        if found is not None:
            lesion_cases.append(found)
        if case in fit_ids and renderer == "gmm":
            fit_pairs.append((np.asarray(data), lm))
    plans_name = plans.get("plans_name", "nnUNetPlans")
    if lesions == "maskgan":
        sampler, lesion_ckpt = _learned_generator("maskgan", dataset_id, fold, plans_name, configuration, device, log)
        source, lesion_note = MaskGANLesionSource(sampler), f"mask GAN {lesion_ckpt}"
    else:
        if not lesion_cases:
            raise NNSynthError("none of the fold's training cases has a lesion to take lesions from")
        source, lesion_note = RealLesionSource(lesion_cases), f"{len(lesion_cases)} real lesion sources"
    if renderer == "gmm":
        render = GaussianMixtureRenderer.fit(fit_pairs, seed=seed)
        render_note = f"Gaussian-mixture renderer fitted on {len(fit_pairs)} cases"
    else:
        render, path = _learned_generator(renderer, dataset_id, fold, plans_name, configuration, device, log)
        render_note = f"{renderer} translator {path}"
    engine = SynthesisEngine(labelmaps=labelmaps, lesion_source=source, renderer=render, classes=classes,
                             foreground_label=foreground_label)
    log(f"nnsynth: synthesis engine ready in {time.perf_counter() - start:.1f} s: {len(labelmaps)} anatomies, "
        f"{lesion_note}, {render_note}")
    return engine
