"""The embedded default generators: shipped small with model cards, load with weights_only, serve a
demo cohort of the same set-up and refuse everything else with a message that says how to train one."""

import dataclasses

import numpy as np
import pytest
from conftest import plan_and_preprocess

from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import load_checkpoint
from nnunet_synth.generators.defaults import DEMO_MARKER, FILES, default_checkpoint, embedded_for, model_card


def _shipped(kind):
    path = default_checkpoint(kind)
    assert path is not None, f"embedded {kind} missing (scripts/build_default_generators.py makes it)"
    return path, load_checkpoint(path, kind=kind).dataset_fingerprint()


def test_defaults_ship_under_20_mb_with_model_cards():
    total = 0
    for kind in FILES:
        path, fingerprint = _shipped(kind)
        total += path.stat().st_size
        card = model_card(kind).read_text()
        assert "nnsynth demo-cohort" in card and "## Measured figures" in card
        assert ("train-maskgan" if kind == "maskgan" else "train-translator --arch pix2pix") in card
        assert fingerprint.dataset_name.endswith("NNSynthDemo")
        ckpt = load_checkpoint(path, kind=kind)
        assert set(ckpt.state_dicts) == {"generator"} and not ckpt.optimizer_states
    assert total < 20e6


def test_defaults_generate_masks_and_images():
    from nnunet_synth.lesions.maskgan import MaskSampler
    from nnunet_synth.renderers.translator import TranslatorRenderer

    sampler = MaskSampler.from_checkpoint(_shipped("maskgan")[0])
    masks = sampler.sample(4, seed=0)
    assert len(masks) == 4 and all(m.shape == sampler.box_shape for m in masks)
    assert sum(int(m.any()) for m in masks) >= 3  # lesions, not empty boxes
    renderer = TranslatorRenderer.from_checkpoint(_shipped("pix2pix")[0])
    labelmap = np.full((40, 48, 36), -1, np.int16)
    labelmap[8:32, 8:40, 6:30] = 3
    labelmap[14:26, 14:30, 10:24] = 2
    labelmap[18:22, 18:24, 14:18] = 4
    image = renderer.render(labelmap, np.random.default_rng(0))
    assert image.shape == (2, 40, 48, 36) and np.isfinite(image).all()
    assert image[0][labelmap == 4].mean() > image[0][labelmap == 3].mean()  # DWI: the infarct is bright


def test_only_a_matching_demo_cohort_gets_the_defaults():
    for kind in FILES:
        path, shipped = _shipped(kind)
        elsewhere = dataclasses.replace(shipped, dataset_name="Dataset123_Elsewhere", plans_name="nnsynthCPU")
        found, as_demo = embedded_for(kind, elsewhere, {DEMO_MARKER: {"seed": 3}}, "train your own")
        assert found == path and not shipped.differences(as_demo)
        with pytest.raises(NNSynthError, match="only serves the nnsynth demo cohort.*train your own"):
            embedded_for(kind, elsewhere, {"name": "ISLES"}, "train your own")
        finer = dataclasses.replace(elsewhere, spacing=(2.0, 2.0, 2.0))
        with pytest.raises(NNSynthError, match="spacing.*train your own"):
            embedded_for(kind, finer, {DEMO_MARKER: {}}, "train your own")


@pytest.mark.slow
def test_trainer_engine_falls_back_to_the_defaults_on_a_demo_cohort(nnunet_env):
    import os

    from nnsynth_datasets.demo_cohort.cohort import make_demo_cohort
    from nnunet_synth.feeding.nnunet_format import to_nnunet_case
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.synthesis.builder import build_engine

    spacing = _shipped("maskgan")[1].spacing
    make_demo_cohort(987, subjects=4, seed=5, spacing=spacing, progress=False)
    plan_and_preprocess(987, dict(os.environ))
    pre = open_preprocessed(987)
    messages = []
    engine = build_engine(TrainingCases.of(pre, pre.identifiers()), lesions="maskgan", renderer="pix2pix",
                          fold=0, log=messages.append)
    assert any("embedded default" in m for m in messages)
    case = to_nnunet_case(engine.make_case(np.random.default_rng(0)))
    assert case.data.shape[0] == 2 and np.isfinite(case.data).all() and set(np.unique(case.seg)) <= {-1, 0, 1}
