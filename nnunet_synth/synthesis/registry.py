"""Lesion sources, renderers and lesion painters by name: name -> factory that builds it for one fold.

A factory gets the :class:`BuildContext` (the fold's training cases with their label maps, the tissue
classes, the seed and device) and returns the built object and a one-line description for the
training log. New synthesis modes register here; trainer variants and ``NNSYNTH_LESIONS`` /
``NNSYNTH_RENDERER`` select them by name.

Two kinds of "renderer" names exist: a whole-scan renderer (``gmm``, ``randomized``, ``pix2pix``, ``spade``) renders a
whole label map, a painter (``inpaint``, ``inpaint-pix2pix``, ``inpaint-spade``) writes the lesion into
the real host image; the builder picks the engine that fits. ``GENERATOR_KINDS`` says which learned
generator (checkpoint kind) each name needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.lesions.maskgan import MaskGANLesionSource
from nnunet_synth.lesions.real import RealLesionSource
from nnunet_synth.nnunet_io.training_cases import TrainingCases
from nnunet_synth.renderers.gaussian_mixture import GaussianMixtureRenderer
from nnunet_synth.renderers.lesion_contrast import LesionContrastModel, voxel_sampling
from nnunet_synth.renderers.randomized import RandomizedRenderer
from nnunet_synth.renderers.translator import TranslatorRenderer
from nnunet_synth.renderers.translator_inpaint import TranslatorLesionPainter
from nnunet_synth.synthesis.anatomy import AnatomyClasses
from nnunet_synth.synthesis.engine import LesionSource, Renderer
from nnunet_synth.synthesis.inpainting import LesionPainter


@dataclass
class BuildContext:
    """What every factory may use to build its part of the engine for one fold."""

    cases: TrainingCases
    classes: AnatomyClasses
    parenchyma: tuple[int, ...]  # label values a lesion may occupy
    fold: int | str = 0
    seed: int = 0
    device: str = "cpu"
    foreground_label: int = 1
    max_fit_cases: int = 20
    log: Callable[[str], None] = field(default=print, repr=False)

    def fit_case_ids(self, among: list[str] | None = None) -> list[str]:
        """The cases fitted renderers learn from (at most max_fit_cases of ``among``, default all, a seeded draw)."""
        ids = self.cases.case_ids if among is None else among
        if len(ids) <= self.max_fit_cases:
            return list(ids)
        return sorted(np.random.default_rng(self.seed).choice(ids, self.max_fit_cases, replace=False).tolist())

    @property
    def sampling(self) -> tuple[float, ...] | None:
        """The preprocessed grid's voxel sides over the finest (what lesion painters measure distances in)."""
        return voxel_sampling(self.cases.pre.spacing)

    def checkpoint(self, kind: str):
        """(path, fingerprint) of the fold's learned generator of ``kind`` (or the embedded default)."""
        from nnunet_synth.generators.lookup import checkpoint_for_fold

        pre = self.cases.pre
        return checkpoint_for_fold(kind, pre.dataset_id, self.fold, pre.fingerprint, pre.dataset_json, self.log)


LesionFactory = Callable[[BuildContext], tuple[LesionSource, str]]
RendererFactory = Callable[[BuildContext], tuple[Renderer, str]]
PainterFactory = Callable[[BuildContext], tuple[LesionPainter, str]]
LESION_SOURCES: dict[str, LesionFactory] = {}
RENDERERS: dict[str, RendererFactory] = {}
PAINTERS: dict[str, PainterFactory] = {}
GENERATOR_KINDS: dict[str, str] = {"maskgan": "maskgan", "pix2pix": "pix2pix", "spade": "spade",
                                   "inpaint-pix2pix": "pix2pix", "inpaint-spade": "spade"}


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


def register_painter(name: str) -> Callable[[PainterFactory], PainterFactory]:
    def add(factory: PainterFactory) -> PainterFactory:
        PAINTERS[name] = factory
        return factory
    return add


def check_names(lesions: str, renderer: str) -> None:
    """Refuse an unknown lesion source or renderer before anything is built."""
    if lesions not in LESION_SOURCES or (renderer not in RENDERERS and renderer not in PAINTERS):
        raise NNSynthError(f"lesion source must be one of {tuple(LESION_SOURCES)} and renderer one of "
                           f"{(*RENDERERS, *PAINTERS)}, got {lesions!r} / {renderer!r}")


def is_inpainting(renderer: str) -> bool:
    """Whether the name is a painter (the host's real image is kept) rather than a whole-scan renderer."""
    return renderer in PAINTERS


def generator_kinds(lesions: str, renderer: str) -> tuple[str, ...]:
    """The learned generators (checkpoint kinds) a lesion source and renderer need, in training order."""
    kinds = [GENERATOR_KINDS[n] for n in (lesions, renderer) if n in GENERATOR_KINDS]
    return tuple(k for k in ("maskgan", "pix2pix", "spade") if k in kinds)


def build_parts(ctx: BuildContext, lesions: str, renderer: str) -> tuple[LesionSource, Renderer | LesionPainter, str]:
    """The named lesion source, then the named renderer or painter, and one line that describes both."""
    check_names(lesions, renderer)
    source, lesion_note = LESION_SOURCES[lesions](ctx)
    render, render_note = (PAINTERS if is_inpainting(renderer) else RENDERERS)[renderer](ctx)
    return source, render, f"{lesion_note}, {render_note}"


@register_lesion_source("real")
def _real_lesions(ctx: BuildContext) -> tuple[LesionSource, str]:
    source = RealLesionSource.from_training_cases(
        ((case, seg, np.isin(labelmap, ctx.parenchyma)) for case, seg, labelmap in ctx.cases.segmentations()),
        ctx.foreground_label)
    return source, f"{len(source.cases)} real lesion sources"


@register_lesion_source("maskgan")
def _maskgan_lesions(ctx: BuildContext) -> tuple[LesionSource, str]:
    path, fingerprint = ctx.checkpoint("maskgan")
    return MaskGANLesionSource.from_checkpoint(path, fingerprint, ctx.device), f"mask GAN {path}"


@register_renderer("gmm")
def _gaussian_mixture(ctx: BuildContext) -> tuple[Renderer, str]:
    fit_ids = ctx.fit_case_ids()
    return (GaussianMixtureRenderer.fit(ctx.cases.images(fit_ids), seed=ctx.seed),
            f"Gaussian-mixture renderer fitted on {len(fit_ids)} cases")


@register_renderer("randomized")
def _randomized(ctx: BuildContext) -> tuple[Renderer, str]:
    fit_ids = ctx.fit_case_ids()
    renderer = RandomizedRenderer.fit(ctx.cases.images(fit_ids), ctx.classes.lesion, ctx.parenchyma, seed=ctx.seed)
    return renderer, f"{renderer.describe()}, anchored on {len(fit_ids)} cases"


def _translator(kind: str) -> RendererFactory:
    def build(ctx: BuildContext) -> tuple[Renderer, str]:
        path, fingerprint = ctx.checkpoint(kind)
        return (TranslatorRenderer.from_checkpoint(path, fingerprint=fingerprint, device=ctx.device),
                f"{kind} translator {path}")
    return build


register_renderer("pix2pix")(_translator("pix2pix"))
register_renderer("spade")(_translator("spade"))


@register_painter("inpaint")
def _lesion_contrast(ctx: BuildContext) -> tuple[LesionPainter, str]:
    # fitted on lesions: the draw takes the cases with a lesion (the lesion-free ones hold no contrast)
    fit_ids = ctx.fit_case_ids([c for c, seg, _ in ctx.cases.segmentations() if (seg == ctx.foreground_label).any()])

    def fit_cases():
        for case in fit_ids:
            image, seg = ctx.cases.load(case)
            yield image, seg == ctx.foreground_label, np.isin(ctx.cases.labelmaps[case], ctx.parenchyma)

    model = LesionContrastModel.fit(fit_cases(), sampling=ctx.sampling)
    return model, f"{model.describe()} of {len(fit_ids)} cases, painted into real hosts"


def _translator_painter(kind: str) -> PainterFactory:
    def build(ctx: BuildContext) -> tuple[LesionPainter, str]:
        path, fingerprint = ctx.checkpoint(kind)
        painter = TranslatorLesionPainter(
            TranslatorRenderer.from_checkpoint(path, fingerprint=fingerprint, device=ctx.device), ctx.classes.lesion,
            sampling=ctx.sampling)
        return painter, f"{painter.describe()} ({path})"
    return build


register_painter("inpaint-pix2pix")(_translator_painter("pix2pix"))
register_painter("inpaint-spade")(_translator_painter("spade"))
