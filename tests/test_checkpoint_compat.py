"""Checkpoints written before the restructure load, and give the same outputs, with today's code.

``tests/data/*_v1.pt`` were saved by nnsynth at commit 26ff1cf (the layout before ``nnunet_synth.generators``
and the namespaced siblings), together with what that code generated from them
(``reference_outputs_v1.npz``: mask-GAN raw output for two volumes, pix2pix and SPADE renders of one
label map, each with seed 0).
"""

from pathlib import Path

import numpy as np
import pytest

from nnunet_synth.generators.checkpoint import FORMAT_VERSION, load_checkpoint
from nnunet_synth.lesions.maskgan import MaskSampler
from nnunet_synth.renderers.translator import TranslatorRenderer

DATA = Path(__file__).resolve().parent / "data"


def test_old_checkpoints_load_with_their_format_and_fields():
    for kind in ("maskgan", "pix2pix", "spade"):
        ckpt = load_checkpoint(DATA / f"{kind}_v1.pt", kind=kind)
        assert ckpt.kind == kind and FORMAT_VERSION >= 1
        assert ckpt.dataset_fingerprint().dataset_name == "Dataset900_Phantom"
        assert "generator" in ckpt.state_dicts


def test_old_mask_gan_samples_as_before():
    reference = np.load(DATA / "reference_outputs_v1.npz")
    sampler = MaskSampler.from_checkpoint(DATA / "maskgan_v1.pt")
    # float rounding differs between CPUs (vector widths, thread splits): 1e-5 of a [-1, 1] output is "the same"
    np.testing.assert_allclose(sampler.generate(np.array([0.3, 0.5]), seed=0), reference["maskgan_raw"],
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["pix2pix", "spade"])
def test_old_translators_render_as_before(kind):
    reference = np.load(DATA / "reference_outputs_v1.npz")
    renderer = TranslatorRenderer.from_checkpoint(DATA / f"{kind}_v1.pt")
    image = renderer.render(reference["labelmap"], np.random.default_rng(0))
    np.testing.assert_allclose(image, reference[kind], rtol=0, atol=1e-5)  # CPU float rounding, as above
