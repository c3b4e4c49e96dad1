"""Lesion sources and renderers by name: name -> factory that builds it for one fold.

A factory gets the :class:`BuildContext` (the preprocessed dataset, the fold's training cases, their
label maps on the preprocessed grid, the seed and device) and returns the built object and a
one-line description for the training log. New synthesis modes register here; trainer variants and
``NNSYNTH_LESIONS`` / ``NNSYNTH_RENDERER`` select them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset
from nnunet_synth.synthesis.anatomy import AnatomyClasses
from nnunet_synth.synthesis.engine import LesionSource, Renderer


@dataclass
class BuildContext:
    """What every factory may use to build its part of the engine for one fold."""

    pre: PreprocessedDataset
    dataset: Any  # nnU-Net dataset holding at least case_ids (load_case)
    case_ids: list[str]
    classes: AnatomyClasses
    labelmaps: dict[str, np.ndarray]  # spatial int16 on the preprocessed grid, -1 outside the crop mask
    fold: int | str = 0
    seed: int = 0
    device: str = "cpu"
    foreground_label: int = 1
    max_fit_cases: int = 20
    log: Callable[[str], None] = field(default=print, repr=False)

    def load(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(image (C, *S) float32, seg (*S)) of a training case, checked against its label map's grid."""
        data, seg, _, _ = self.dataset.load_case(case_id)
        seg = np.asarray(seg[0])
        if self.labelmaps[case_id].shape != seg.shape:
            raise NNSynthError(f"label map of {case_id} has shape {self.labelmaps[case_id].shape} on the "
                               f"preprocessed grid, the preprocessed case has {seg.shape}: delete the "
                               f"nnsynth_labelmaps_* cache in {self.pre.root} and train again")
        return np.asarray(data), seg

    @cached_property
    def fit_case_ids(self) -> list[str]:
        """The cases fitted renderers learn from (at most max_fit_cases, a seeded draw)."""
        if len(self.case_ids) <= self.max_fit_cases:
            return list(self.case_ids)
        rng = np.random.default_rng(self.seed)
        return sorted(rng.choice(self.case_ids, self.max_fit_cases, replace=False).tolist())

    def checkpoint(self, kind: str):
        """(path, fingerprint) of the fold's learned generator of ``kind`` (or the embedded default)."""
        from nnunet_synth.generators.lookup import checkpoint_for_fold

        return checkpoint_for_fold(kind, self.pre.dataset_id, self.fold, self.pre.fingerprint,
                                   self.pre.dataset_json, self.log)


LesionFactory = Callable[[BuildContext], tuple[LesionSource, str]]
RendererFactory = Callable[[BuildContext], tuple[Renderer, str]]
LESION_SOURCES: dict[str, LesionFactory] = {}
RENDERERS: dict[str, RendererFactory] = {}


def register_lesion_source(name: str) -> Callable[[LesionFactory], LesionFactory]:
    def add(factory: LesionFactory) -> LesionFactory:
        LESION_SOURCES[name] = factory
        return factory
    return add


def register_renderer(name: str) -> Callable[[RendererFactory], RendererFactory]:
    def add(factory: RendererFactory) -> RendererFactory:
        RENDERERS[name] = factory
        return factory
    return add


def check_names(lesions: str, renderer: str) -> None:
    """Refuse an unknown lesion source or renderer before anything is built."""
    if lesions not in LESION_SOURCES or renderer not in RENDERERS:
        raise NNSynthError(f"lesion source must be one of {tuple(LESION_SOURCES)} and renderer one of "
                           f"{tuple(RENDERERS)}, got {lesions!r} / {renderer!r}")


@register_lesion_source("real")
def _real_lesions(ctx: BuildContext) -> tuple[LesionSource, str]:
    from nnunet_synth.lesions.real import RealLesionSource, extract_lesion_case

    cases = []
    for case in ctx.case_ids:
        _, seg = ctx.load(case)
        parenchyma = np.isin(ctx.labelmaps[case], ctx.classes.parenchyma)
        found = extract_lesion_case(case, seg, parenchyma, ctx.foreground_label)
        if found is not None:
            cases.append(found)
    if not cases:
        raise NNSynthError("none of the fold's training cases has a lesion to take lesions from")
    return RealLesionSource(cases), f"{len(cases)} real lesion sources"


@register_lesion_source("maskgan")
def _maskgan_lesions(ctx: BuildContext) -> tuple[LesionSource, str]:
    from nnunet_synth.lesions.maskgan import MaskGANLesionSource, MaskSampler

    path, fingerprint = ctx.checkpoint("maskgan")
    sampler = MaskSampler.from_checkpoint(path, fingerprint=fingerprint, device=ctx.device)
    return MaskGANLesionSource(sampler), f"mask GAN {path}"


@register_renderer("gmm")
def _gaussian_mixture(ctx: BuildContext) -> tuple[Renderer, str]:
    from nnunet_synth.renderers.gaussian_mixture import GaussianMixtureRenderer

    pairs = [(ctx.load(case)[0], ctx.labelmaps[case]) for case in ctx.fit_case_ids]
    return GaussianMixtureRenderer.fit(pairs, seed=ctx.seed), f"Gaussian-mixture renderer fitted on {len(pairs)} cases"


def _translator(kind: str) -> RendererFactory:
    def build(ctx: BuildContext) -> tuple[Renderer, str]:
        from nnunet_synth.renderers.translator import TranslatorRenderer

        path, fingerprint = ctx.checkpoint(kind)
        return (TranslatorRenderer.from_checkpoint(path, fingerprint=fingerprint, device=ctx.device),
                f"{kind} translator {path}")
    return build


register_renderer("pix2pix")(_translator("pix2pix"))
register_renderer("spade")(_translator("spade"))
