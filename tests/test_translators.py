"""pix2pix-3D and SPADE-3D translators: shapes, training, resume, DDP, checkpoints, renderer, CLI and report.

Runs on the session's phantom dataset (id 900, two channels, label maps with background/CSF/GM/WM/lesion,
preprocessed by nnU-Net) with networks of a few filters and 16^3 crops.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from nnsynth_gan.translator import cli as translator_cli
from nnsynth_gan.translator.train import TrainOptions, TrainResult, train_translator
from nnunet_synth.errors import NNSynthError
from nnunet_synth.generators.checkpoint import load_checkpoint
from nnunet_synth.generators.lookup import checkpoint_path
from nnunet_synth.models.discriminators import MultiScaleDiscriminator
from nnunet_synth.nnunet_io.folds import fold_case_ids
from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
from nnunet_synth.renderers.translator import TranslatorRenderer, TranslatorSpace, translator_classes

torch.set_num_threads(1)

DATASET_ID = 900
TINY = {
    "pix2pix": {"base_filters": 4, "max_filters": 8, "n_levels": 2, "disc_filters": (4, 8)},
    "spade": {"base_filters": 4, "max_filters": 8, "n_levels": 2, "spade_hidden": 4, "noise_dim": 2,
              "disc_filters": (4, 8)},
}


def options(arch: str, steps: int, **kw) -> TrainOptions:
    base = dict(dataset_id=DATASET_ID, arch=arch, fold="0", steps=steps, crop=(16, 16, 16), save_every=1,
                model=dict(TINY[arch]), progress=False)
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def trained(phantom_preprocessed: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, TrainResult]:
    """One training step of each architecture in a module-private nnUNet_results."""
    mp = pytest.MonkeyPatch()
    for var, path in phantom_preprocessed.items():
        mp.setenv(var, str(path))
    mp.setenv("nnUNet_results", str(tmp_path_factory.mktemp("translator_results")))
    try:
        yield {arch: train_translator(options(arch, 1)) for arch in ("pix2pix", "spade")}
    finally:
        mp.undo()


@pytest.fixture
def results(phantom_env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.mark.parametrize("arch", ["pix2pix", "spade"])
def test_shape_contracts(arch: str):
    config_cls, gen_cls = translator_classes(arch)
    config = config_cls(in_channels=6, out_channels=2, **TINY[arch])
    gen, disc = gen_cls(config), MultiScaleDiscriminator(config.discriminator())
    label = torch.zeros(2, 6, 16, 12, 8)
    label[:, 3] = 1
    noise = gen.sample_noise(label.shape, torch.Generator().manual_seed(0))
    out = gen(label, noise)
    assert out.shape == (2, 2, 16, 12, 8) and out.abs().max() <= 1
    scores = disc(label, out)
    assert len(scores) == config.disc_scales and all(s[-1].shape[:2] == (2, 1) for s in scores)
    if arch == "spade":
        assert noise.shape == (2, 2, 4, 3, 2)
        assert not torch.equal(out, gen(label, torch.randn_like(noise)))  # the noise input matters
    else:
        assert noise is None
    with pytest.raises(ValueError, match="multiple of 4"):
        gen(torch.zeros(1, 6, 10, 12, 8))
    with pytest.raises(ValueError, match="cannot score"):
        disc(label[..., :2], out[..., :2])


def test_space_encodes_labels_and_maps_intensities():
    space = TranslatorSpace(labels={"background": 0, "csf": 1, "lesion": 2}, low=[-1.0, 0.0], high=[3.0, 2.0])
    onehot = space.encode(torch.tensor([[-1, 0, 2]]))
    assert onehot.shape == (1, 4, 3) and onehot[0, :, 0].tolist() == [1, 0, 0, 0] and onehot[0, 3, 2] == 1
    with pytest.raises(NNSynthError, match="knows -1"):
        space.encode(torch.tensor([[3]]))
    image = torch.tensor([[[-1.0, 1.0, 9.0]], [[0.0, 1.0, 2.0]]])[None]
    unit = space.to_unit(image)
    assert unit[0, 0].tolist() == [[-1.0, 0.0, 1.0]]  # 9 is clipped to the upper end
    assert torch.allclose(space.from_unit(unit)[0, 1], image[0, 1])


@pytest.mark.parametrize("arch", ["pix2pix", "spade"])
def test_one_training_step_on_training_cases_only(trained: dict[str, TrainResult], arch: str):
    res = trained[arch]
    pre = open_preprocessed(DATASET_ID)
    train, val = fold_case_ids(pre, "0")
    ckpt = load_checkpoint(res.checkpoint, kind=arch, fingerprint=pre.fingerprint)
    assert ckpt.step == 1 and res.checkpoint.name == f"{arch}_fold0.pt"
    assert set(ckpt.extra["train_case_ids"]) == set(train) and not set(train) & set(val)
    config_cls, gen_cls = translator_classes(arch)
    torch.manual_seed(0)  # the trainer's initial weights come from the seed
    init = gen_cls(ckpt.build_config(config_cls)).state_dict()
    assert any(not torch.equal(init[k], v) for k, v in ckpt.state_dicts["generator"].items())
    history = ckpt.extra["history"]
    assert history["step"] == [1.0] and all(np.isfinite(history[k][0]) for k in history)
    assert (history["feature_matching"][0] > 0) == (arch == "spade")
    plots = res.checkpoint.parent / f"{arch}_fold0_plots"
    assert (plots / "loss.png").stat().st_size > 0 and (plots / "samples_step000001.png").stat().st_size > 0


@pytest.mark.parametrize("arch", ["pix2pix", "spade"])
def test_renderer_round_trip_odd_shape_and_seeded_sampling(trained: dict[str, TrainResult], arch: str):
    res = trained[arch]
    renderer = TranslatorRenderer.from_checkpoint(res.checkpoint, open_preprocessed(DATASET_ID).fingerprint)
    assert renderer.kind == arch and renderer.num_channels == 2
    for k, v in res.generator.state_dict().items():
        assert torch.equal(renderer.generator.state_dict()[k].cpu(), v.cpu())
    labelmap = np.zeros((13, 17, 11), np.int16)
    labelmap[2:11, 3:14, 2:9] = 2
    labelmap[4:9, 5:12, 3:8] = 3
    labelmap[5:7, 6:8, 4:6] = 4
    labelmap[0] = -1
    image = renderer.render(labelmap, np.random.default_rng(3))
    assert image.shape == (2, 13, 17, 11) and image.dtype == np.float32 and np.isfinite(image).all()
    again = renderer.render(labelmap[None], np.random.default_rng(3))
    assert np.array_equal(image, again)
    other = renderer.render(labelmap, np.random.default_rng(4))
    assert np.array_equal(image, other) == (arch == "pix2pix")  # only SPADE draws noise


def test_foreign_dataset_and_wrong_kind_are_refused(trained: dict[str, TrainResult]):
    fp = open_preprocessed(DATASET_ID).fingerprint
    foreign = dataclasses.replace(fp, dataset_name="Dataset901_Other", spacing=(1.0, 1.0, 1.0))
    path = trained["spade"].checkpoint
    with pytest.raises(NNSynthError) as err:
        TranslatorRenderer.from_checkpoint(path, foreign)
    assert "spacing" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(NNSynthError, match="not 'pix2pix'"):
        TranslatorRenderer.from_checkpoint(path, fp, kind="pix2pix")


def test_continue_reproduces_an_uninterrupted_run(results: Path, tmp_path: Path, monkeypatch):
    straight = train_translator(options("spade", 2, save_every=100))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "resumed"))
    assert train_translator(options("spade", 1)).step == 1
    with pytest.raises(NNSynthError, match="already at step"):
        train_translator(options("spade", 1, resume=True))
    resumed = train_translator(options("spade", 2, resume=True, lr=1.0))  # stored optimization settings win
    for net in ("generator", "discriminator"):
        a, b = getattr(straight, net).state_dict(), getattr(resumed, net).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{net}.{k} differs after resume"
    assert straight.history == resumed.history


def _ddp_worker(rank: int, world: int, port: int, out: str, env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = train_translator(options("pix2pix", 1))
    torch.save({"generator": res.generator.state_dict(), "divergence": res.rank_divergence,
                "history": res.history}, f"{out}/rank{rank}.pt")


def test_ddp_two_ranks_end_with_identical_weights(results: Path, tmp_path: Path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: os.environ[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path), env), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for k, v in r0["generator"].items():
        assert torch.equal(v, r1["generator"][k]), f"generator.{k} differs between ranks"
    assert r0["divergence"] == 0.0 and r0["history"] == r1["history"]
    ckpt = load_checkpoint(checkpoint_path(DATASET_ID, "pix2pix", 0))
    assert ckpt.extra["world_size"] == 2 and len(ckpt.extra["rng_states"]) == 2
    assert not torch.equal(ckpt.extra["rng_states"][0], ckpt.extra["rng_states"][1])  # each rank its own crops


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nnsynth")
    translator_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_train_continue_and_report(results: Path, tmp_path: Path):
    d = str(DATASET_ID)
    tiny = ["--filters", "4", "--max-filters", "8", "--levels", "2", "--disc-filters", "4,8", "--crop", "16",
            "--device", "cpu", "--no-progress"]
    with pytest.raises(NNSynthError, match="multiple of 4"):
        run_cli("train-translator", "-d", d, "--arch", "pix2pix", "--steps", "1", *tiny, "--crop", "18")
    assert run_cli("train-translator", "-d", d, "--arch", "pix2pix", "--steps", "1", *tiny) == 0
    assert run_cli("train-translator", "-d", d, "--arch", "pix2pix", "--steps", "2", "--continue",
                   "--no-progress") == 0
    assert load_checkpoint(checkpoint_path(DATASET_ID, "pix2pix", 0)).step == 2

    out = tmp_path / "report"
    assert run_cli("translator-report", "-d", d, "-o", str(out)) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["renderers"]) == {"pix2pix", "gaussian_mixture"} and rep["n_cases"] >= 1
    _, val = fold_case_ids(open_preprocessed(DATASET_ID), "0")
    assert rep["case_ids"] == val
    for res in rep["renderers"].values():
        s = res["summary"]
        assert all(len(s[k]["mean"]) == 2 for k in ("mae", "psnr", "ssim", "variety", "checkerboard"))
        assert {"gray_matter", "white_matter"} <= set(s["class_error"])
    assert rep["renderers"]["pix2pix"]["summary"]["variety"]["mean"] == [0.0, 0.0]
    assert (out / "side_by_side.png").stat().st_size > 0 and "| pix2pix |" in (out / "report.md").read_text()


def test_period2_share_finds_a_checkerboard():
    """A stride-2 artefact raises the period-2 power share; a smooth scan keeps it low."""
    from scipy import ndimage

    from nnsynth_gan.translator.report import period2_share

    rng = np.random.default_rng(0)
    smooth = ndimage.gaussian_filter(rng.standard_normal((32, 32, 32)), 2.0)
    grid = np.indices(smooth.shape).sum(0) % 2 * 2.0 - 1.0  # +-1 alternating along every axis
    brain = np.zeros(smooth.shape, bool)
    brain[2:30, 3:29, 4:28] = True
    clean = period2_share(smooth, brain)
    board = period2_share(smooth + 0.05 * smooth.std() * grid, brain)
    assert clean < 0.1 and board > 10 * clean
    assert np.isnan(period2_share(smooth, np.zeros_like(brain)))
