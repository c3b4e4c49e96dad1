"""The bad-input corpus: every command refuses bad input with the option or file and the problem, exit
code 2, and leaves everything it could have touched as it was.

One case per defect found by the bad-input probe (names and paths, numeric ranges, checkpoints,
prediction folders, settings), plus cases that already held. Each case builds its input under tmp,
runs ``nnsynth`` in-process, and compares a snapshot of every file (hidden ones included) before and
after. The kill tests (interrupted conversions, overwrites and checkpoint writes) are in
``test_kill_safety.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from fake_cohorts import affine_for, image, make_folder, mask, save

from nnunet_synth.cli import main
from nnunet_synth.errors import NNSynthError

DATA = Path(__file__).resolve().parent / "data"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse refusals
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.err + captured.out


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file under roots (hidden included): size and content hash."""
    state = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")) if Path(root).exists() else []:
            if path.is_file():
                state[str(path)] = (path.stat().st_size, hashlib.sha1(path.read_bytes()).hexdigest())
            else:
                state[str(path)] = (-1, "dir")
    return state


@dataclass
class Case:
    id: str
    build: Callable[[Path], list[str]]  # tmp -> argv (nnUNet folders are in tmp/raw, tmp/preprocessed, tmp/results)
    patterns: tuple[str, ...]  # all must appear in the message (the option or file, and the problem)
    rc: int = 2


def _cohort(tmp: Path) -> Path:
    root = tmp / "cohort"
    if not root.exists():
        make_folder(root, cases=3)
    return root


def _convert(tmp: Path, *extra: str) -> list[str]:
    root = _cohort(tmp)
    return ["convert", "folder", "--images", str(root / "images"), "--labels", str(root / "labels"),
            "-d", "531", "-np", "1", *extra]


def _convert_twice(tmp: Path) -> list[str]:
    assert main(_convert(tmp, "--name", "First")) == 0
    return _convert(tmp, "--name", "Second")


def _singular_affine(tmp: Path) -> list[str]:
    root = _cohort(tmp)
    path = root / "images" / "case01_0000.nii.gz"
    singular = affine_for(image(1).shape)
    singular[:3, 2] = 0.0  # the third voxel axis collapses: the header maps the volume onto a plane
    header = nib.Nifti1Header()
    header.set_sform(singular, code=1)
    header.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(image(1), None, header), path)
    return _convert(tmp)


def _plans(tmp: Path) -> Path:
    pre = tmp / "preprocessed" / "Dataset901_X"
    pre.mkdir(parents=True, exist_ok=True)
    arch = {"n_stages": 4, "features_per_stage": [8, 16, 32, 64], "kernel_sizes": [[3, 3, 3]] * 4,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3, "n_conv_per_stage": [2] * 4, "n_conv_per_stage_decoder": [2] * 3}
    plans = {"plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "patch_size": [32, 32, 32], "batch_size": 2,
        "architecture": {"arch_kwargs": arch}}}}
    (pre / "nnUNetPlans.json").write_text(json.dumps(plans))
    return pre


def _shrink(tmp: Path, *extra: str) -> list[str]:
    _plans(tmp)
    return ["shrink-plans", "-d", "901", *extra]


def _masks(folder: Path, arrays: dict[str, np.ndarray], affine: np.ndarray | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for case, data in arrays.items():
        save(folder / f"{case}.nii.gz", data, affine)
    return folder


def _evaluate(tmp: Path, pred: dict[str, np.ndarray] | None = None, gt: dict[str, np.ndarray] | None = None,
              *extra: str, pred_affine: np.ndarray | None = None) -> list[str]:
    gt = gt if gt is not None else {"c1": mask(1), "c2": mask(2)}
    pred = pred if pred is not None else {k: v.copy() for k, v in gt.items()}
    _masks(tmp / "gt", gt)
    _masks(tmp / "pred", pred, pred_affine)
    return ["evaluate", str(tmp / "gt"), str(tmp / "pred"), *extra]


def _broken_prediction(tmp: Path, content: bytes) -> list[str]:
    argv = _evaluate(tmp)
    (tmp / "pred" / "c2.nii.gz").write_bytes(content)
    return argv


def _truncated_prediction(tmp: Path) -> list[str]:
    argv = _evaluate(tmp)
    path = tmp / "pred" / "c2.nii.gz"
    path.write_bytes(path.read_bytes()[:60])
    return argv


PROBABILITIES = {"c1": mask(1).astype(np.float32) * 0.73, "c2": mask(2).astype(np.float32)}
WITH_NAN = {"c1": np.where(mask(1) > 0, np.nan, 0).astype(np.float32), "c2": mask(2)}
MULTI_LABEL = {"c1": mask(1) * 2, "c2": mask(2) * 7}

CORPUS = [
    # 1: names that would leave their folder are refused before anything is copied (one check for all commands)
    Case("convert-name-slash", lambda t: _convert(t, "--name", "a/b"),
         ("argument --name", "'a/b'", "not a valid name")),
    Case("convert-name-escape", lambda t: _convert(t, "--name", "../../escape"), ("--name", "not a valid name")),
    Case("demo-cohort-name", lambda t: ["demo-cohort", "-d", "532", "--name", "x y"], ("--name", "not a valid name")),
    Case("export-name", lambda t: ["export", "-d", "533", "--n", "2", "--out-id", "534", "--name", "../x"],
         ("--name", "not a valid name")),
    # 5: a singular affine is one problem line naming the file
    Case("convert-singular-affine", _singular_affine, ("case01_0000.nii.gz", "singular")),
    # 13: plans names and patch sizes
    Case("shrink-plans-escape", lambda t: _shrink(t, "--plans-name", "../../escaped"),
         ("--plans-name", "not a valid name")),
    Case("shrink-plans-zero-patch", lambda t: _shrink(t, "--plans-name", "small", "--patch-size", "0", "0", "0"),
         ("--patch-size", ">= 1")),
    Case("shrink-plans-stages", lambda t: _shrink(t, "--plans-name", "small", "--stages", "1"),
         ("--stages", "between 2 and 10")),
    # 9: predictions that are not label maps
    Case("evaluate-probabilities", lambda t: _evaluate(t, PROBABILITIES), ("c1.nii.gz", "non-integer", "probabilit")),
    Case("evaluate-nan", lambda t: _evaluate(t, WITH_NAN), ("c1.nii.gz", "NaN")),
    Case("evaluate-multi-label", lambda t: _evaluate(t, MULTI_LABEL), ("c1.nii.gz", "labels [2]", "--merge-labels")),
    Case("evaluate-reference-labels", lambda t: _evaluate(t, {"c1": mask(1), "c2": mask(2)},
                                                          {"c1": mask(1) * 3, "c2": mask(2)}),
         ("gt/c1.nii.gz", "labels [3]", "--merge-labels")),
    Case("evaluate-other-grid", lambda t: _evaluate(t, pred_affine=affine_for(mask(1).shape, origin=(0, 0, 0))),
         ("c1.nii.gz", "another grid")),
    # 10 + 11: no scorable case, broken files, -o a folder
    Case("evaluate-no-scorable-case", lambda t: _evaluate(t, {"other": mask(1)}, None, "--allow-missing"),
         ("no case to score",)),
    Case("evaluate-empty-file", lambda t: _broken_prediction(t, b""), ("c2.nii.gz", "cannot read the prediction")),
    Case("evaluate-text-file", lambda t: _broken_prediction(t, b"not a nifti\n"),
         ("c2.nii.gz", "cannot read the prediction")),
    Case("evaluate-truncated", _truncated_prediction, ("c2.nii.gz", "cannot read the prediction")),
    Case("evaluate-output-folder", lambda t: [*_evaluate(t), "-o", str(t / "gt")], ("-o", "is a folder")),
    # held before: missing predictions without --allow-missing
    Case("evaluate-missing-prediction", lambda t: _evaluate(t, {"c1": mask(1)}), ("c2.nii.gz", "--allow-missing")),
    # held before: an id in use is not replaced without --overwrite
    Case("convert-id-in-use", lambda t: _convert_twice(t), ("already used", "--overwrite")),
]

# 12: every numeric option of every command is range-checked by argparse (exit 2, nothing runs)
NUMERIC = [
    (["train-maskgan", "-d", "900", "--batch-size", "0"], "--batch-size"),
    (["train-maskgan", "-d", "900", "--steps", "0"], "--steps"),
    (["train-maskgan", "-d", "900", "--lr", "0"], "--lr"),
    (["train-maskgan", "-d", "900", "--lr", "nan"], "--lr"),
    (["train-maskgan", "-d", "900", "--n-critic", "0"], "--n-critic"),
    (["train-maskgan", "-d", "900", "--save-every", "0"], "--save-every"),
    (["train-maskgan", "-d", "900", "--volume-weight", "-1"], "--volume-weight"),
    (["train-maskgan", "-d", "900", "--latent-dim", "0"], "--latent-dim"),
    (["train-maskgan", "-d", "0"], "-d/--dataset-id"),
    (["sample-masks", "-d", "900", "--n", "0", "-o", "x"], "--n"),
    (["sample-masks", "-d", "900", "--n", "2", "--volume-ml", "-3", "-o", "x"], "--volume-ml"),
    (["maskgan-report", "-d", "900", "--n", "0", "-o", "x"], "--n"),
    (["train-translator", "-d", "900", "--batch-size", "0"], "--batch-size"),
    (["train-translator", "-d", "900", "--lesion-fraction", "2"], "--lesion-fraction"),
    (["train-translator", "-d", "900", "--levels", "-1"], "--levels"),
    (["train-translator", "-d", "900", "--filters", "0"], "--filters"),
    (["train-translator", "-d", "900", "--l1-weight", "-1"], "--l1-weight"),
    (["translator-report", "-d", "900", "-o", "x", "--max-cases", "0"], "--max-cases"),
    (["labelmaps", "-d", "900", "--smooth", "-1"], "--smooth"),
    (["labelmaps", "-d", "900", "-np", "0"], "-np/--num-processes"),
    (["export", "-d", "900", "--n", "0", "--out-id", "901"], "--n"),
    (["demo", "--subjects", "1"], "--subjects"),
    (["export", "-d", "900", "--n", "2", "--out-id", "0"], "--out-id"),
    (["experiment", "-d", "900", "--seeds", "0"], "--seeds"),
    (["experiment", "-d", "900", "--epochs", "0"], "--epochs"),
    (["experiment", "-d", "900", "-j", "0"], "-j/--jobs"),
    (["demo", "--jobs", "0"], "-j/--jobs"),
    (["shrink-plans", "-d", "900", "--plans-name", "p", "--batch-size", "0"], "--batch-size"),
    (["convert", "folder", "--images", "a", "--labels", "b", "-d", "900", "-np", "0"], "-np/--num-processes"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_bad_input_is_refused_and_changes_nothing(case: Case, tmp_path: Path, nnunet_env, capsys):
    argv = case.build(tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    rc, message = run_cli(argv, capsys)
    assert rc == case.rc, message
    for pattern in case.patterns:
        assert pattern in message, f"{pattern!r} not in: {message}"
    assert "Traceback" not in message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("argv,option", NUMERIC, ids=[" ".join(a[:1] + a[-2:]) for a, _ in NUMERIC])
def test_numeric_options_are_range_checked(argv, option, tmp_path, nnunet_env, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    rc, message = run_cli(argv, capsys)
    assert rc == 2 and f"argument {option}" in message and "must be" in message, message
    assert snapshot(tmp_path) == before


# 7 + 8: checkpoints that are empty, text, damaged or corrupted are refused with the file named
def _checkpoint_variant(tmp: Path, how: str) -> Path:
    path = tmp / f"{how}.pt"
    if how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("this is not a checkpoint\n")
    else:
        raw = torch.load(DATA / "maskgan_v1.pt", weights_only=True)
        from nnunet_synth.generators.checkpoint import weights_sha256

        raw["weights_sha256"] = weights_sha256(raw["state_dicts"])
        if how == "step":
            raw["step"] = "many"
        elif how == "version":
            raw["format_version"] = "one"
        elif how == "flipped":
            name = next(iter(raw["state_dicts"]["generator"]))
            raw["state_dicts"]["generator"][name] = raw["state_dicts"]["generator"][name] + 1e-3
        elif how == "no-generator":
            del raw["state_dicts"]["generator"]
        torch.save(raw, path)
    return path


@pytest.mark.parametrize("how,pattern", [("empty", "empty (0 bytes)"), ("text", "cannot read checkpoint"),
                                         ("step", "'step' must be a whole number"),
                                         ("version", "'format_version' must be a whole number"),
                                         ("flipped", "corrupted"), ("no-generator", "no generator weights")])
def test_damaged_checkpoints_are_refused_with_the_file(how, pattern, tmp_path):
    from nnunet_synth.generators.checkpoint import load_checkpoint

    path = _checkpoint_variant(tmp_path, how)
    with pytest.raises(NNSynthError) as exc:
        load_checkpoint(path)
    assert str(path) in str(exc.value) and pattern in str(exc.value)


def test_flipped_bytes_in_the_weights_are_detected(tmp_path):
    """64 bytes flipped inside the stored weights of a checkpoint written with its hash."""
    from nnunet_synth.generators.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(DATA / "maskgan_v1.pt")
    path = save_checkpoint(tmp_path / "maskgan.pt", ckpt)
    load_checkpoint(path)  # intact: loads
    blob = bytearray(path.read_bytes())
    tensor = next(iter(ckpt.state_dicts["generator"].values())).contiguous().numpy().tobytes()
    at = bytes(blob).find(tensor[:64])
    assert at > 0
    blob[at:at + 64] = bytes(b ^ 0xFF for b in blob[at:at + 64])
    path.write_bytes(bytes(blob))
    with pytest.raises(NNSynthError, match="corrupted"):
        load_checkpoint(path)


def test_damaged_checkpoint_through_the_command_line(phantom_env, tmp_path, capsys):
    path = _checkpoint_variant(tmp_path, "empty")
    rc, message = run_cli(["sample-masks", "-d", "900", "--n", "2", "--checkpoint", str(path),
                           "-o", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert rc == 2 and str(path) in message and "empty" in message
    assert not (tmp_path / "out").exists()


# 12: a loss that becomes non-finite stops training with the step and the loss named
def test_non_finite_loss_stops_training():
    from nnsynth_gan.adversarial import AdversarialTrainer
    from nnsynth_gan.ddp import DistContext

    class Probe(AdversarialTrainer):
        history_keys = ("step", "d_loss", "g_loss")

        def __init__(self):
            self.ctx = DistContext()
            self.step_count, self.history = 7, {k: [] for k in self.history_keys}

    with pytest.raises(NNSynthError, match=r"step 7: g_loss = nan is not finite"):
        Probe().record(torch.tensor([0.5, float("nan")]))


def test_gan_options_refuse_a_zero_batch():
    from nnsynth_gan.maskgan.train import TrainOptions

    with pytest.raises(NNSynthError, match="batch_size must be >= 1"):
        TrainOptions(dataset_id=900, batch_size=0)


# settings: one error naming the variable and the value, before nnU-Net creates the fold folder
@pytest.mark.parametrize("variable,value,expected", [
    ("NNSYNTH_FRACTION", "1.5", "in [0, 1]"), ("NNSYNTH_FRACTION", "half", "in [0, 1]"),
    ("NNSYNTH_EPOCHS", "0", ">= 1"), ("NNSYNTH_TORCH_THREADS", "abc", ">= 1"),
    ("NNSYNTH_POOL_SIZE", "-1", ">= 0"), ("NNSYNTH_FINAL_VALIDATION", "no", "0 or 1"),
    ("NNSYNTH_RENDERER", "dalle", "renderer one of")])
def test_bad_settings_stop_the_trainer_before_its_folder_exists(variable, value, expected, phantom_env, monkeypatch):
    import nnsynth_trainers.synth_trainer as mod

    monkeypatch.setenv(variable, value)
    pre = phantom_env["nnUNet_preprocessed"] / "Dataset900_Phantom"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    results = phantom_env["nnUNet_results"]
    before = snapshot(results)
    with pytest.raises(NNSynthError) as exc:
        mod.nnUNetTrainerSynth(plans, "3d_fullres", 0, json.loads((pre / "dataset.json").read_text()),
                               torch.device("cpu"))
    message = str(exc.value)
    assert expected in message and (variable in message or value in message)
    assert snapshot(results) == before


def test_missing_generator_stops_once_and_leaves_no_fold_folder(phantom_env):
    import nnsynth_trainers.synth_trainer as mod

    pre = phantom_env["nnUNet_preprocessed"] / "Dataset900_Phantom"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    trainer = mod.nnUNetTrainerSynthSPADE(plans, "3d_fullres", 0, json.loads((pre / "dataset.json").read_text()),
                                          torch.device("cpu"))
    trainer.initialize()
    with pytest.raises(NNSynthError) as exc:
        trainer.get_dataloaders()
    message = str(exc.value)
    assert message.count("nnsynth train-maskgan") == 1 and "cannot start" in message
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert not Path(trainer.output_folder).exists()


# 6: fold 'all' (training for deployment) works with the synth trainers
def test_synth_trainer_trains_fold_all(phantom_env):
    import nnsynth_trainers.synth_trainer as mod
    from nnunet_synth.feeding.mixing import is_synthetic_key

    pre = phantom_env["nnUNet_preprocessed"] / "Dataset900_Phantom"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [16, 16, 16]
    plans["continue_training"] = False
    trainer = mod.nnUNetTrainerSynth(plans, "3d_fullres", "all", json.loads((pre / "dataset.json").read_text()),
                                     torch.device("cpu"))
    trainer.initialize()
    dl_train, dl_val = trainer.get_dataloaders()
    try:
        assert sum(is_synthetic_key(k) for k in next(dl_train)["keys"]) == 1
        assert "synthesis engine ready" in open(trainer.log_file).read()
        assert trainer.synth_engine.case_ids == sorted(trainer.synth_dataset.identifiers)  # every case trains
    finally:
        trainer.synth_supply.close()


# 14: final files get the modes the umask gives (labs share nnUNet_raw / nnUNet_results within a group)
def test_written_files_and_folders_follow_the_umask(tmp_path):
    from nnunet_synth.generators.checkpoint import load_checkpoint, save_checkpoint
    from nnunet_synth.nnunet_io.atomic import staged_folder, write_json_atomic

    old = os.umask(0o002)
    try:
        ckpt = save_checkpoint(tmp_path / "c.pt", load_checkpoint(DATA / "maskgan_v1.pt"))
        js = write_json_atomic(tmp_path / "a.json", {"x": 1})
        with staged_folder(tmp_path / "Dataset001_A") as stage:
            (stage / "f.txt").write_text("x")
    finally:
        os.umask(old)
    assert oct(ckpt.stat().st_mode & 0o777) == oct(0o664)
    assert oct(js.stat().st_mode & 0o777) == oct(0o664)
    assert oct((tmp_path / "Dataset001_A").stat().st_mode & 0o777) == oct(0o775)


def test_prediction_without_reference_is_named_not_ignored(tmp_path, capsys):
    argv = _evaluate(tmp_path, {"c1": mask(1), "c2": mask(2), "extra": mask(3)})
    rc, message = run_cli(argv, capsys)
    assert rc == 0 and "extra.nii.gz" in message and "no reference" in message
    result = json.loads((tmp_path / "pred" / "stroke_metrics.json").read_text())
    assert result["unmatched_predictions"] == ["extra"]


def test_merge_labels_is_explicit(tmp_path, capsys):
    rc, message = run_cli([*_evaluate(tmp_path, MULTI_LABEL), "--merge-labels"], capsys)
    assert rc == 0, message
    result = json.loads((tmp_path / "pred" / "stroke_metrics.json").read_text())
    assert result["mean"]["dice"] == 1.0


def test_results_json_has_no_nan(tmp_path, capsys):
    """Standard JSON parsers reject NaN: non-finite values are written as null."""
    from nnunet_synth.nnunet_io.atomic import write_json_atomic

    path = write_json_atomic(tmp_path / "r.json", {"dice": float("nan"), "ok": 1.0})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == \
        {"dice": None, "ok": 1.0}


def test_stale_leftovers_of_killed_runs_are_removed(tmp_path, capsys):
    from nnunet_synth.nnunet_io.atomic import staging_folder, write_json_atomic

    dead = 2**22 + 12345  # above the default pid_max, so never a live process
    (tmp_path / f".Dataset001_A.partial-{dead}-abcd").mkdir()
    (tmp_path / f".c.json.{dead}.x1y2.tmp").write_text("half")
    write_json_atomic(tmp_path / "c.json", {"a": 1})
    staging_folder(tmp_path / "Dataset001_A")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert f".Dataset001_A.partial-{dead}-abcd" not in names and f".c.json.{dead}.x1y2.tmp" not in names
    assert "left by an interrupted earlier run" in capsys.readouterr().out


def test_interrupted_swap_is_put_back(tmp_path):
    """A kill between moving the old folder aside and moving the new one in: the next run restores the old."""
    from nnunet_synth.nnunet_io.atomic import staging_folder

    dead = 2**22 + 12346
    old = tmp_path / f".Dataset001_A.old-{dead}"
    old.mkdir()
    (old / "dataset.json").write_text("{}")
    staging_folder(tmp_path / "Dataset001_A")
    assert (tmp_path / "Dataset001_A" / "dataset.json").is_file() and not old.exists()
