"""Lesions written into real scans: the fitted contrast, the translator difference, the engine and its trainers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nnunet_synth.feeding.mixing import is_synthetic_key
from nnunet_synth.feeding.nnunet_format import to_nnunet_case
from nnunet_synth.renderers.lesion_contrast import LesionContrastModel, signed_distance
from nnunet_synth.synthesis.anatomy import AnatomyClasses


def _ball(shape, centre, radius):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    return np.sqrt(((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0)) < radius


def _scan(rng, shape=(40, 40, 40), contrast=(1.0, -0.5), lesion_at=None):
    """Two channels of noisy tissue (sd 0.2) with an optional lesion of known core contrast."""
    image = rng.normal(0.0, 0.2, (2, *shape)).astype(np.float32)
    lesion = np.zeros(shape, bool) if lesion_at is None else _ball(shape, lesion_at, 5)
    for c, v in enumerate(contrast):
        image[c][lesion] += v
    return image, lesion, np.ones(shape, bool)


def test_fitted_contrast_matches_the_real_lesions_and_keeps_the_host_texture():
    rng = np.random.default_rng(0)
    cases = [_scan(rng, lesion_at=(20, 20, 20)) for _ in range(3)] + [_scan(rng)]  # a lesion-free case too
    model = LesionContrastModel.fit(cases)
    assert model.contrasts.shape == (3, 2)
    np.testing.assert_allclose(np.median(model.contrasts, 0), [1.0, -0.5], atol=0.08)
    assert model.profile[:, 0].max() < 0.15 and model.profile[:, -1].min() > 0.85  # sharp edge, full core

    host, _, _ = _scan(np.random.default_rng(1))
    new = _ball(host.shape[1:], (12, 25, 20), 4)
    params = model.get_parameters(np.random.default_rng(2))
    painted = model.apply(host, new, params)
    change = painted - host
    far = signed_distance(new) < -2.5
    assert np.abs(change[:, far]).max() == 0.0  # nothing changes beyond the soft edge: no seam is possible
    core = signed_distance(new) >= 3
    np.testing.assert_allclose(change[:, core].mean(1), params.contrast, atol=0.1)
    # the host's own noise survives inside the lesion: painted and host still agree voxel by voxel there
    assert np.corrcoef(painted[0][core], host[0][core])[0, 1] > 0.7
    again = model.apply(host, new, params)
    np.testing.assert_array_equal(painted, again)  # parameters are drawn apart from where they are applied


def test_fit_refuses_cases_without_usable_lesions():
    from nnunet_synth.errors import NNSynthError

    rng = np.random.default_rng(0)
    with pytest.raises(NNSynthError, match="lesion"):
        LesionContrastModel.fit([_scan(rng), _scan(rng)])


def test_translator_difference_is_confined_to_the_lesion_margin():
    from nnunet_synth.models.pix2pix3d import Pix2PixConfig, Pix2PixGenerator
    from nnunet_synth.renderers.translator import TranslatorRenderer, TranslatorSpace
    from nnunet_synth.renderers.translator_inpaint import TranslatorLesionPainter

    torch.manual_seed(0)
    labels = {"background": 0, "csf": 1, "gray_matter": 2, "white_matter": 3, "lesion": 4}
    generator = Pix2PixGenerator(Pix2PixConfig(in_channels=6, out_channels=2, base_filters=4, max_filters=8,
                                               n_levels=2, upsampling="trilinear"))
    renderer = TranslatorRenderer("pix2pix", generator, TranslatorSpace(labels, [-2.0, -2.0], [2.0, 2.0]))
    painter = TranslatorLesionPainter(renderer, lesion_value=4, margin=3, context=8)
    shape = (48, 40, 36)
    labelmap = np.full(shape, 3, np.int16)
    labelmap[:4] = -1
    host = np.random.default_rng(0).normal(0, 1, (2, *shape)).astype(np.float32)
    new = _ball(shape, (24, 20, 18), 4)
    painted = painter.paint(host, labelmap, new, np.random.default_rng(1))
    change = np.abs(painted - host).max(0)
    assert change[new].mean() > 0  # the translator's lesion arrives
    assert change[signed_distance(new) < -3.5].max() == 0.0  # only inside the lesion and its fading margin
    assert painter.box(new)[0] == slice(13, 36)  # only a box around the lesion (21..27) and 8 voxels of context


def test_inpainting_engine_keeps_the_host_and_its_lesion(phantom_env):
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.synthesis.builder import build_engine
    from nnunet_synth.synthesis.inpainting import InpaintingEngine

    pre = open_preprocessed(900)
    cases = TrainingCases.of(pre, pre.identifiers())
    notes = []
    engine = build_engine(cases, "real", "inpaint", log=notes.append)
    assert isinstance(engine, InpaintingEngine) and "painted into real hosts" in notes[0]
    classes = AnatomyClasses.from_dataset_json(pre.dataset_json)
    seen_hosts_with_lesion = 0
    for seed in range(6):
        case = engine.make_case(np.random.default_rng(seed))
        image, seg = cases.load(case.provenance["anatomy"])
        own = seg == 1
        new = case.new_lesion
        assert new.any() and not (new & own).any()
        assert (case.lesion == (own | new)).all()  # the host's lesion stays labelled: the union
        assert np.isin(cases.labelmaps[case.provenance["anatomy"]][new], classes.parenchyma).all()
        assert case.provenance["lesion_source"] != case.provenance["anatomy"]
        labelmap = cases.labelmaps[case.provenance["anatomy"]]
        untouched = (signed_distance(new) < -2.5) | (labelmap < 0) | own
        np.testing.assert_array_equal(case.image[:, untouched], image[:, untouched])  # the rest is the real scan
        nn = to_nnunet_case(case)
        assert set(np.unique(nn.seg)) <= {-1, 0, 1} and (nn.seg[0] == 1).sum() == case.lesion.sum()
        seen_hosts_with_lesion += int(own.any())
    assert seen_hosts_with_lesion > 0
    a = engine.make_case(np.random.default_rng(3))
    b = engine.make_case(np.random.default_rng(3))
    np.testing.assert_array_equal(a.image, b.image)


def test_inpaint_trainer_mixes_inpainted_cases_into_its_batches(phantom_env):
    from test_synth_trainer import _trainer

    trainer = _trainer(phantom_env, "nnUNetTrainerSynthInpaint")
    dl_train, _ = trainer.get_dataloaders()
    try:
        assert "painted into real hosts" in open(trainer.log_file).read()
        keys = [k for _ in range(3) for k in next(dl_train)["keys"]]
        assert sum(is_synthetic_key(k) for k in keys) == len(keys) // 2
        served = trainer.synth_dataset.load_case(next(k for k in keys if is_synthetic_key(k)))
        assert served[3]["nnsynth_host"] == "real image"  # what the loader gets is an inpainted real case
    finally:
        trainer.synth_supply.close()


def test_inpaint_variants_name_their_generators():
    from nnsynth_experiments.design import find_trainer, generators_needed

    expected = {"nnUNetTrainerSynthInpaint": (), "nnUNetTrainerSynthInpaintMaskGAN": ("maskgan",),
                "nnUNetTrainerSynthInpaintPix2pix": ("maskgan", "pix2pix"),
                "nnUNetTrainerSynthInpaintSPADE": ("maskgan", "spade")}
    assert {name: generators_needed(find_trainer(name)) for name in expected} == expected


def test_lesion_realism_report_and_inpainted_export(phantom_env, tmp_path):
    import nibabel as nib

    from nnunet_synth.cli import main

    out = tmp_path / "realism"
    assert main(["lesion-realism", "-d", "900", "-f", "0", "-n", "4", "--columns", "2", "-o", str(out)]) == 0
    report = json.loads((out / "lesion_realism.json").read_text())
    assert set(report["trainers"]) == {"nnUNetTrainerSynthInpaint", "nnUNetTrainerSynth"}
    for trainer in report["trainers"].values():
        assert trainer["lesions"] > 0
        assert all(0.0 <= f["ks"] <= 1.0 for f in trainer["features"].values())
    assert (out / "lesion_realism.png").read_bytes()[:4] == b"\x89PNG"
    assert "KS" in (out / "lesion_realism.md").read_text()

    assert main(["export", "-d", "900", "--n", "2", "--out-id", "905", "--folds", "0", "--renderer", "inpaint"]) == 0
    raw = phantom_env["nnUNet_raw"] / "Dataset905_PhantomSynth"
    try:
        meta = json.loads((raw / "dataset.json").read_text())["nnsynth_export"]
        assert meta["renderer"] == "inpaint" and meta["synthetic_cases"] == 2
        label = np.asarray(nib.load(raw / "labelsTr" / "synth_f0_00000.nii.gz").dataobj)
        assert label.any()
    finally:
        import shutil

        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(phantom_env["nnUNet_preprocessed"] / "Dataset905_PhantomSynth", ignore_errors=True)


def test_inpainted_case_keeps_the_hosts_ignore_label():
    """A host segmentation with nnU-Net's ignore label (here 2) keeps it; the new lesion is written on top."""
    from nnunet_synth.synthesis.inpainting import InpaintingEngine

    shape = (24, 24, 24)
    labelmap = np.full(shape, 3, np.int16)
    labelmap[:2] = -1
    seg = np.where(labelmap < 0, -1, 0).astype(np.int16)
    seg[20:, :, :] = 2  # unannotated slab: nnU-Net's ignore label
    new_lesion = _ball(shape, (10, 12, 12), 3)

    class Source:
        def draw(self, host, brain, allowed, rng):
            return new_lesion, "test lesion"

    class AddOne:
        num_channels = 1

        def paint(self, image, labelmap, lesion, rng):
            return image + lesion

    classes = AnatomyClasses.from_dataset_json({})
    engine = InpaintingEngine(labelmaps={"h": labelmap}, load_host=lambda c: (np.zeros((1, *shape), np.float32), seg),
                              lesion_source=Source(), painter=AddOne(), classes=classes)
    case = engine.make_case(np.random.default_rng(0))
    nn = to_nnunet_case(case)
    assert (nn.seg[0][20:] == 2).all() and (nn.seg[0][:2] == -1).all()
    assert (nn.seg[0][new_lesion] == 1).all() and (nn.seg[0] == 1).sum() == new_lesion.sum()


def test_lesion_edge_counts_millimetres_on_a_thick_slice_grid():
    """On a 1 x 1 x 3 grid the soft edge spans the same millimetres along the thick axis as in-plane."""
    from nnunet_synth.errors import NNSynthError
    from nnunet_synth.renderers.lesion_contrast import voxel_sampling

    sampling = voxel_sampling((1.5, 1.5, 4.5))
    assert sampling == (1.0, 1.0, 3.0)
    mask = np.zeros((21, 21, 9), bool)
    mask[8:13, 8:13, 3:6] = True
    sdist = signed_distance(mask, sampling)
    assert sdist[6, 10, 4] == -2.0 and sdist[10, 10, 2] == -3.0  # one thick slice out is 3 finest voxels
    model = LesionContrastModel(contrasts=[[1.0]], profile=[[0.0, 0.5, 1.0, 1.0, 1.0]], texture_sd=[0.0],
                                sampling=sampling)
    painted = model.apply(np.zeros((1, *mask.shape), np.float32), mask, model.get_parameters(np.random.default_rng(0)))
    assert painted[0, 7, 10, 4] != 0.0 and painted[0, 10, 10, 2] == 0.0  # in-plane halo, none one slice out
    with pytest.raises(NNSynthError, match="spacing"):
        voxel_sampling((1.0, 0.0, 1.0))
