"""The experiment's design (sizes, nested subsamples, folds in splits_final.json) and its report."""

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest

from nnsynth_experiments.design import (
    assign_folds,
    check_same_training,
    choose_test_set,
    parse_sizes,
    profile_with,
    subsample,
)
from nnsynth_experiments.report import aggregate, csv_text, markdown_table, plot_dice
from nnunet_synth.errors import NNSynthError

POOL = [f"case_{i:03d}" for i in range(30)]


def test_sizes_accept_all_and_leave_out_more_than_the_pool():
    assert parse_sizes(["20", "10", "all", "10"], 30) == ([10, 20, 30], [])
    assert parse_sizes(["10", "50", "all"], 30) == ([10, 30], [50])
    with pytest.raises(NNSynthError, match="50.*only 30 training cases"):
        parse_sizes(["50"], 30)
    with pytest.raises(NNSynthError, match="integers or 'all'"):
        parse_sizes(["ten"], 30)


def test_subsamples_are_nested_per_seed_and_differ_between_seeds():
    lesions = set(POOL[::3])
    s10, s20 = subsample(POOL, lesions, 10, 0), subsample(POOL, lesions, 20, 0)
    assert len(s10) == 10 and len(s20) == 20 and set(s10) <= set(s20)
    assert subsample(POOL, lesions, 10, 1) != s10
    assert subsample(POOL, lesions, 10, 0) == s10  # deterministic
    assert sorted(subsample(POOL, lesions, 30, 2)) == POOL


def test_a_subsample_always_holds_a_lesion_case():
    only = {"case_017"}
    for seed in range(5):
        assert "case_017" in subsample(POOL, only, 1, seed)


def test_test_set_is_fixed_and_validated():
    assert choose_test_set(POOL, 6) == choose_test_set(POOL, 6)
    assert len(choose_test_set(POOL, 6)) == 6
    with pytest.raises(NNSynthError, match="--test-cases"):
        choose_test_set(POOL, 30)


def test_folds_are_appended_after_the_default_cv_and_reused(tmp_path):
    splits_file = tmp_path / "splits_final.json"
    subsets = {"n10_seed0": POOL[:10], "n20_seed0": POOL[:20]}
    folds = assign_folds(splits_file, POOL, subsets)
    splits = json.loads(splits_file.read_text())
    assert len(splits) == 7 and folds == {"n10_seed0": 5, "n20_seed0": 6}
    assert splits[5] == {"train": POOL[:10], "val": POOL[:10]}
    default_folds = [s["val"] for s in splits[:5]]
    assert sorted(c for v in default_folds for c in v) == POOL  # nnU-Net's 5-fold CV stays intact
    # the experiment's own record keeps the indices; a new subset is appended, never inserted
    again = assign_folds(splits_file, POOL, {"n10_seed1": POOL[5:15], **subsets}, previous=folds)
    assert again == {"n10_seed1": 7, **folds}
    assert len(json.loads(splits_file.read_text())) == 8
    # without that record (another experiment folder) nothing is shared
    assert assign_folds(splits_file, POOL, {"n10_seed0": POOL[:10]}) == {"n10_seed0": 8}


def test_equal_subsamples_of_different_seeds_get_their_own_folds(tmp_path):
    splits_file = tmp_path / "splits_final.json"
    subsets = {f"n30_seed{s}": POOL for s in range(3)}  # 'all': the same cases for every seed
    folds = assign_folds(splits_file, POOL, subsets)
    assert sorted(folds.values()) == [5, 6, 7]
    assert assign_folds(splits_file, POOL, subsets, previous=folds) == folds


def test_a_fold_that_lost_its_subsample_moves_to_a_new_one(tmp_path):
    splits_file = tmp_path / "splits_final.json"
    folds = assign_folds(splits_file, POOL, {"n10_seed0": POOL[:10], "n10_seed1": POOL[10:20]})
    splits = json.loads(splits_file.read_text())
    splits[5]["train"] = POOL[:9]  # edited, or the index taken by another experiment folder
    splits_file.write_text(json.dumps(splits[:6]))  # and fold 6 lost: the file was re-created shorter
    given = []
    moved = assign_folds(splits_file, POOL, {"n10_seed0": POOL[:10], "n10_seed1": POOL[10:20]}, previous=folds,
                         check=lambda key, index: given.append((key, index)))
    assert moved == {"n10_seed0": 6, "n10_seed1": 7} and given == [("n10_seed0", 6), ("n10_seed1", 7)]
    after = json.loads(splits_file.read_text())
    assert after[5]["train"] == POOL[:9]  # never rewritten under its owner
    assert after[6]["train"] == sorted(POOL[:10]) and after[7]["train"] == sorted(POOL[10:20])


def test_a_refused_new_fold_writes_nothing(tmp_path):
    splits_file = tmp_path / "splits_final.json"
    assign_folds(splits_file, POOL, {"n10_seed0": POOL[:10]})
    before = splits_file.read_text()

    def refuse(key, index):
        raise NNSynthError(f"fold {index} holds old models")

    with pytest.raises(NNSynthError, match="fold 6 holds old models"):
        assign_folds(splits_file, POOL, {"n10_seed1": POOL[10:20]}, check=refuse)
    assert splits_file.read_text() == before


def test_a_new_fold_index_with_old_models_is_refused(tmp_path):
    from types import SimpleNamespace

    from nnsynth_experiments.runner import ExperimentRunner

    results = tmp_path / "results"
    runner = SimpleNamespace(env={"nnUNet_results": str(results)}, raw=tmp_path / "Dataset990_X", out=tmp_path,
                             pre=tmp_path / "pre", prof=profile_with("cpu-small"))
    ExperimentRunner._refuse_old_models(runner, "n10_seed0", 7)  # nothing there yet
    (results / "Dataset990_X" / "nnsynth").mkdir(parents=True)
    (results / "Dataset990_X" / "nnsynth" / "maskgan_fold17.pt").write_bytes(b"x")  # another index
    ExperimentRunner._refuse_old_models(runner, "n10_seed0", 7)
    old = results / "Dataset990_X" / "nnUNetTrainerBudget__nnsynthCPU__3d_fullres" / "fold_7"
    old.mkdir(parents=True)
    (old / "checkpoint_final.pth").write_bytes(b"x")
    with pytest.raises(NNSynthError, match=r"fold 7 .* new for the subsample n10_seed0.*fold_7/checkpoint_final"):
        ExperimentRunner._refuse_old_models(runner, "n10_seed0", 7)
    old.joinpath("checkpoint_final.pth").unlink()
    (results / "Dataset990_X" / "nnsynth" / "pix2pix_fold7_latest.pt").write_bytes(b"x")
    with pytest.raises(NNSynthError, match="pix2pix_fold7_latest.pt"):
        ExperimentRunner._refuse_old_models(runner, "n10_seed0", 7)


def test_a_folder_refuses_another_budget(tmp_path):
    from dataclasses import asdict

    prof = profile_with("cpu-small")
    previous = {"profile": asdict(prof), "generators": "gmm"}
    check_same_training(previous, profile_with("cpu-small", val_iterations=9, final_validation=True), "gmm",
                        tmp_path)  # neither changes the trained model
    with pytest.raises(NNSynthError, match="epochs 60 -> 5"):
        check_same_training(previous, profile_with("cpu-small", epochs=5), "gmm", tmp_path)
    with pytest.raises(NNSynthError, match="generators gmm -> learned"):
        check_same_training(previous, prof, "learned", tmp_path)
    # a folder written before the configuration was recorded holds 3d_fullres runs of batch 2
    older = {"profile": {k: v for k, v in asdict(prof).items() if k not in ("configuration", "batch_size",
                                                                            "max_features")}}
    check_same_training(older, prof, "gmm", tmp_path)
    with pytest.raises(NNSynthError, match="configuration 3d_fullres -> 2d"):
        check_same_training(older, profile_with("cpu-small", configuration="2d"), "gmm", tmp_path)


def test_profiles_and_overrides():
    p = profile_with("cpu-small", epochs=3, patch=None)
    assert p.epochs == 3 and p.patch == profile_with("cpu-small").patch and p.shrink
    assert profile_with("paper").iterations == 250 and not profile_with("paper").shrink
    with pytest.raises(NNSynthError, match="unknown profile"):
        profile_with("gpu-huge")


def _result(n, seed, arm, dice):
    return {"name": f"n{n}_seed{seed}_{arm}", "n_real": n, "seed": seed, "arm": arm, "trainer": "T", "fold": 5,
            "dice": dice, "dice_nnunet": dice, "lesion_f1": 0.5, "abs_volume_diff_ml": 1.0,
            "abs_count_diff": 1.0, "train_seconds": 1.0}


def test_report_means_and_sds(tmp_path):
    results = [_result(10, s, "real", d) for s, d in enumerate((0.2, 0.4, 0.6))]
    results += [_result(10, 0, "synth", 0.5), _result(20, 0, "real", None)]
    rows = aggregate(results)
    real10 = next(r for r in rows if r["n_real"] == 10 and r["arm"] == "real")
    assert real10["runs"] == 3 and math.isclose(real10["dice_mean"], 0.4) and math.isclose(real10["dice_sd"], 0.2)
    synth10 = next(r for r in rows if r["arm"] == "synth")
    assert synth10["dice_sd"] == 0.0
    assert math.isnan(next(r for r in rows if r["n_real"] == 20)["dice_mean"])
    md = markdown_table(rows)
    assert "| 10 | real | 3 | 0.400 +/- 0.200 |" in md
    lines = csv_text(rows).splitlines()
    assert lines[0].startswith("n_real,arm,runs,dice_mean,dice_sd") and len(lines) == 4
    png = plot_dice(rows, tmp_path / "plot.png", "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_arms_are_aliases_or_trainer_classes_and_name_their_generators():
    from nnsynth_experiments.design import generators_needed, trainer_class

    assert trainer_class("real", "gmm").__name__ == "nnUNetTrainerBudget"
    assert trainer_class("synth", "learned").__name__ == "nnUNetTrainerSynthPix2pix"
    assert trainer_class("nnUNetTrainerSynthSPADE", "gmm").__name__ == "nnUNetTrainerSynthSPADE"
    assert generators_needed(trainer_class("nnUNetTrainerSynthSPADE", "gmm")) == ("maskgan", "spade")
    assert generators_needed(trainer_class("synth", "gmm")) == ()
    assert generators_needed(trainer_class("real", "gmm")) == ()
    with pytest.raises(NNSynthError, match="no trainer class 'nnUNetTrainerNope'"):
        trainer_class("nnUNetTrainerNope", "gmm")


def test_extra_test_sets_are_found_and_checked_against_the_channels(tmp_path):
    from nnsynth_experiments.runner import resolve_extra_tests

    site = tmp_path / "test_scanner-b"
    for sub in ("imagesTs", "labelsTs"):
        (site / sub).mkdir(parents=True)
    for case in ("a", "b"):
        (site / "labelsTs" / f"{case}.nii.gz").write_bytes(b"")
        for c in range(2):
            (site / "imagesTs" / f"{case}_{c:04d}.nii.gz").write_bytes(b"")
    sets = resolve_extra_tests([str(site)], 2, ".nii.gz")
    assert sets == {"scanner-b": (site / "imagesTs", site / "labelsTs")}
    pair = resolve_extra_tests([f"{site / 'imagesTs'}:{site / 'labelsTs'}"], 2, ".nii.gz")
    assert list(pair) == ["imagesTs"]
    with pytest.raises(NNSynthError, match="has 3 channel"):
        resolve_extra_tests([str(site)], 3, ".nii.gz")
    with pytest.raises(NNSynthError, match="is not a folder"):
        resolve_extra_tests([str(tmp_path / "nowhere")], 2, ".nii.gz")
    with pytest.raises(NNSynthError, match="given twice"):
        resolve_extra_tests([str(site), str(site)], 2, ".nii.gz")


@pytest.fixture
def phantom_experiment_env(phantom_env):
    """The session's shared phantom, with the splits, plans and results an experiment adds put back afterwards."""
    pre = phantom_env["nnUNet_preprocessed"] / "Dataset900_Phantom"
    split_file = pre / "splits_final.json"
    saved = split_file.read_text() if split_file.is_file() else None
    yield phantom_env
    if saved is None:
        split_file.unlink(missing_ok=True)
    else:
        split_file.write_text(saved)
    (pre / "nnsynthCPU.json").unlink(missing_ok=True)
    shutil.rmtree(phantom_env["nnUNet_results"] / "Dataset900_Phantom" / "nnUNetTrainerBudget__nnsynthCPU__3d_fullres",
                  ignore_errors=True)


def test_report_only_reads_the_finished_runs_of_a_design(phantom_experiment_env, tmp_path):
    from nnsynth_experiments.design import profile_with
    from nnsynth_experiments.runner import ExperimentConfig, ExperimentRunner, run_experiment

    cfg = ExperimentConfig(dataset_id=900, sizes=["2"], arms=["real", "synth"], seeds=2, output=tmp_path / "exp",
                           profile=profile_with("cpu-small", plans="nnsynthCPU"), report_only=True)
    with pytest.raises(NNSynthError, match="holds no experiment"):
        run_experiment(cfg)
    _report_only_on_a_partial_design(cfg, ExperimentRunner(cfg).prepare(), run_experiment)


def _report_only_on_a_partial_design(cfg, runs, run_experiment):
    from nnunet_synth.nnunet_io.atomic import write_json_atomic

    rng = np.random.default_rng(0)
    for run in runs[:3]:  # seed 1's synth run has not finished
        folder = cfg.output / "runs" / run.name
        per_case = {f"t{i}": {"dice": float(rng.uniform()), "lesion_f1": 0.5, "abs_volume_diff_ml": 1.0,
                              "gt_volume_ml": 2.0, "pred_volume_ml": 2.0, "pred_count": 1} for i in range(4)}
        write_json_atomic(folder / "predictions" / "stroke_metrics.json", {"per_case": per_case, "mean": {}})
        write_json_atomic(folder / "result.json", {**run.to_dict(), "name": run.name, "extra_tests": {},
                                                   "dice": 0.5, "dice_nnunet": 0.5, "lesion_f1": 0.5,
                                                   "abs_volume_diff_ml": 1.0, "abs_count_diff": 1.0})
    summary = run_experiment(cfg)
    assert summary["not_finished"] == [runs[3].name] and len(summary["runs"]) == 3
    dice = next(r for r in summary["paired"] if r["metric"] == "dice")
    assert dice["n_seeds"] == 1  # only the seed with both arms finished is paired
    assert (cfg.output / "results.md").is_file() and not (cfg.output / "runs" / runs[3].name).exists()
    design = (cfg.output / "experiment.json").read_text()
    only_real = run_experiment(dataclasses.replace(cfg, arms=["real"]))  # a subset of the arms, nothing written
    assert {r["arm"] for r in only_real["runs"]} == {"real"} and (cfg.output / "experiment.json").read_text() == design


def test_owner_tags_keep_two_folders_apart_even_with_equal_subsamples(tmp_path):
    splits_file = tmp_path / "splits_final.json"
    subsets = {"n10_seed0": POOL[:10]}
    a = assign_folds(splits_file, POOL, subsets, owner=lambda k: f"A#{k}")
    b = assign_folds(splits_file, POOL, subsets, owner=lambda k: f"B#{k}")
    assert a == {"n10_seed0": 5} and b == {"n10_seed0": 6}
    splits = json.loads(splits_file.read_text())
    assert splits[5]["nnsynth_owner"] == "A#n10_seed0" and splits[6]["nnsynth_owner"] == "B#n10_seed0"
    # the file is re-created and B comes first: it may not take A's old index 5 as its own ...
    splits_file.unlink()
    assert assign_folds(splits_file, POOL, subsets, previous=b, owner=lambda k: f"B#{k}") == {"n10_seed0": 5}
    # ... and A, finding B's tag on equal cases at its recorded index, moves on
    assert assign_folds(splits_file, POOL, subsets, previous=a, owner=lambda k: f"A#{k}") == {"n10_seed0": 6}
    # an untagged entry of the same cases (an older version) is adopted and tagged
    plain = assign_folds(tmp_path / "old" / "splits_final.json", POOL, subsets)
    again = assign_folds(tmp_path / "old" / "splits_final.json", POOL, subsets, previous=plain,
                         owner=lambda k: f"C#{k}")
    assert again == plain
    assert json.loads((tmp_path / "old" / "splits_final.json").read_text())[5]["nnsynth_owner"] == "C#n10_seed0"


def test_every_refused_fold_is_named_at_once(tmp_path):
    splits_file = tmp_path / "splits_final.json"

    def refuse(key, index):
        raise NNSynthError(f"fold {index} of {key} refused")

    with pytest.raises(NNSynthError, match=r"(?s)fold 5 of n10_seed0 refused.*fold 6 of n10_seed1 refused"):
        assign_folds(splits_file, POOL, {"n10_seed0": POOL[:10], "n10_seed1": POOL[10:20]}, check=refuse)
    assert not splits_file.exists()


def test_fold_folders_carry_their_owner(tmp_path):
    from nnsynth_experiments.fold_owner import check_fold_dir, claim_fold_dir, fold_dir_owner

    fold_dir = tmp_path / "nnUNetTrainerBudget__nnsynthCPU__3d_fullres" / "fold_7"
    check_fold_dir(fold_dir, "A#n10_seed0")  # nothing there: fine
    claim_fold_dir(fold_dir, "A#n10_seed0", POOL[:10])
    assert fold_dir_owner(fold_dir) == "A#n10_seed0"
    check_fold_dir(fold_dir, "A#n10_seed0")
    with pytest.raises(NNSynthError, match="fold_7 holds models of A#n10_seed0, not of B#n10_seed0"):
        check_fold_dir(fold_dir, "B#n10_seed0")


def test_prepare_refuses_a_new_fold_holding_another_folders_models(phantom_experiment_env, tmp_path):
    from nnsynth_experiments.fold_owner import claim_fold_dir, owner_tag
    from nnsynth_experiments.runner import ExperimentConfig, ExperimentRunner

    split_file = phantom_experiment_env["nnUNet_preprocessed"] / "Dataset900_Phantom" / "splits_final.json"
    results = phantom_experiment_env["nnUNet_results"] / "Dataset900_Phantom"

    def config(name):
        return ExperimentConfig(dataset_id=900, sizes=["2"], arms=["real"], seeds=1, output=tmp_path / name,
                                profile=profile_with("cpu-small", plans="nnsynthCPU"))

    run_a = ExperimentRunner(config("a")).prepare()[0]
    run_b = ExperimentRunner(config("b")).prepare()[0]
    assert run_a.fold != run_b.fold
    fold_a = results / f"nnUNetTrainerBudget__nnsynthCPU__3d_fullres/fold_{run_a.fold}"
    claim_fold_dir(fold_a, owner_tag((tmp_path / "a").resolve(), "n2_seed0"), ["x"])
    (fold_a / "checkpoint_final.pth").write_bytes(b"a's model")
    split_file.unlink()  # re-created: B, resumed first, is given A's index
    design_b = (tmp_path / "b" / "experiment.json").read_text()
    refused = rf"fold {run_a.fold} .* new for the subsample n2_seed0.*checkpoint_final"
    with pytest.raises(NNSynthError, match=refused):
        ExperimentRunner(config("b")).prepare()
    assert not split_file.exists() and (tmp_path / "b" / "experiment.json").read_text() == design_b
    # A itself may take that index again: the folder's marker says the model is its own
    assert ExperimentRunner(config("a")).prepare()[0].fold == run_a.fold


def test_a_2d_profile_shrinks_nnunets_2d_configuration_and_refuses_what_would_fail_later(phantom_experiment_env,
                                                                                        phantom_2d_env, tmp_path):
    from nnsynth_experiments.runner import ExperimentConfig, ExperimentRunner

    pre = phantom_experiment_env["nnUNet_preprocessed"] / "Dataset900_Phantom"
    prof = profile_with("cpu-2d", patch=16, stages=3, plans="test2d")
    assert prof.configuration == "2d" and prof.batch_size == 32

    def prepare(profile=prof, arms=("real",)):
        return ExperimentRunner(ExperimentConfig(dataset_id=900, sizes=["2"], arms=list(arms), seeds=1,
                                                 output=tmp_path / "exp", profile=profile)).prepare()

    try:
        runner = ExperimentRunner(ExperimentConfig(dataset_id=900, sizes=["2"], arms=["real"], seeds=1,
                                                   output=tmp_path / "exp", profile=prof))
        run = runner.prepare()[0]
        made = json.loads((pre / "test2d.json").read_text())["configurations"]["2d"]
        assert made["patch_size"] == [16, 16] and made["batch_size"] == 32
        assert made["architecture"]["arch_kwargs"]["features_per_stage"] == [16, 32, 64]
        assert runner._fold_dir("nnUNetTrainerBudget", run.fold).parent.name == "nnUNetTrainerBudget__test2d__2d"
        assert json.loads((tmp_path / "exp" / "experiment.json").read_text())["profile"]["configuration"] == "2d"
        # the plans on disk are this profile's: another batch size or other features are refused, naming both
        with pytest.raises(NNSynthError, match=r"batch 32 and features \[16, 32, 64\] for 2d, the profile asks for "
                                               r"\[16, 16\], 3, 8 and \[16, 32, 64\]"):
            prepare(profile_with("cpu-2d", patch=16, stages=3, plans="test2d", batch_size=8))
        with pytest.raises(NNSynthError, match=r"asks for \[16, 16\], 3, 32 and \[32, 64, 128\]"):
            prepare(profile_with("cpu-2d", patch=16, stages=3, plans="test2d", base_features=32))
        # learned generators are trained and checked on 3d_fullres: refused before anything is written
        design = (tmp_path / "exp" / "experiment.json").read_text()
        with pytest.raises(NNSynthError, match="nnUNetTrainerSynthPix2pix need learned generators"):
            prepare(arms=("real", "nnUNetTrainerSynthPix2pix"))
        assert (tmp_path / "exp" / "experiment.json").read_text() == design
        # a configuration that was planned but never preprocessed is named with the command that makes it
        plans = json.loads((pre / "test2d.json").read_text())
        plans["configurations"]["2d"]["data_identifier"] = "never_preprocessed_2d"
        (pre / "test2d.json").write_text(json.dumps(plans))
        with pytest.raises(NNSynthError, match=r"never_preprocessed_2d not found.*nnUNetv2_plan_and_preprocess -d 900 "
                                               r"-c 2d"):
            prepare()
        # and a folder of 2d runs refuses to be resumed as 3d
        with pytest.raises(NNSynthError, match="configuration 2d -> 3d_fullres"):
            prepare(profile_with("cpu-2d", patch=16, stages=3, plans="test3d", configuration="3d_fullres",
                                 batch_size=2))
    finally:
        (pre / "test2d.json").unlink(missing_ok=True)
        (pre / "test3d.json").unlink(missing_ok=True)
