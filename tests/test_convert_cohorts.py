"""ATLAS v2.0, ISLES 2015 and plain-folder conversion on fake trees mirroring their layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_cohorts import load, make_atlas2, make_folder, make_isles15

from dataset_tools.splits import grouped_kfold
from nnunet_synth.cli import main


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_atlas2_training_and_testing(tmp_path: Path, nnunet_env: dict) -> None:
    make_atlas2(tmp_path / "ATLAS_2", train=2, test=1)
    assert main(["convert", "atlas2", str(tmp_path), "--dataset-id", "510", "-np", "1"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset510_ATLAS2"
    assert _listing(out / "imagesTr") == ["sub-r001s001_ses-1_0000.nii.gz", "sub-r001s002_ses-1_0000.nii.gz"]
    assert _listing(out / "labelsTr") == ["sub-r001s001_ses-1.nii.gz", "sub-r001s002_ses-1.nii.gz"]
    assert _listing(out / "imagesTs") == ["sub-r002s001_ses-1_0000.nii.gz"]
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "T1w"} and dataset["numTraining"] == 2
    summary = json.loads((out / "conversion_summary.json").read_text())
    assert summary["num_test"] == 1 and summary["lesion_volume_ml"]["max"] == pytest.approx(0.08)


@pytest.mark.parametrize("extra_level", [True, False])
def test_isles15_siss(tmp_path: Path, nnunet_env: dict, extra_level: bool) -> None:
    root = tmp_path / "download" / ("SISS2015" if extra_level else "")
    make_isles15(root, cases=2, test=1)
    assert main(["convert", "isles15", str(tmp_path / "download"), "-d", "515", "--channels", "dwi", "Flair",
                 "-np", "1"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset515_ISLES15"
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "DWI", "1": "FLAIR"}
    assert _listing(out / "labelsTr") == ["siss001.nii.gz", "siss002.nii.gz"]
    assert _listing(out / "imagesTs") == ["siss_test001_0000.nii.gz", "siss_test001_0001.nii.gz"]
    dwi_src = next((root / "Training" / "1").glob("*MR_DWI*/*.nii"))
    np.testing.assert_array_equal(load(out / "imagesTr" / "siss001_0000.nii.gz")[0], load(dwi_src)[0])
    assert load(out / "labelsTr" / "siss001.nii.gz")[0].dtype == np.uint8


def test_folder_multichannel_with_patients(tmp_path: Path, nnunet_env: dict) -> None:
    names = tuple(f"sub-{p}_ses-{s}" for p in "abcdef" for s in (1, 2))
    images, labels = make_folder(tmp_path, cases=len(names), channels=2, names=names)
    assert main(["convert", "folder", "--images", str(images), "--labels", str(labels), "-d", "520",
                 "--channel-names", "DWI", "ADC", "--patient-pattern", "^(sub-[^_]+)", "-np", "1"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset520_Folder"
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "DWI", "1": "ADC"}
    assert len(_listing(out / "imagesTr")) == 24
    splits = json.loads((nnunet_env["nnUNet_preprocessed"] / "Dataset520_Folder" / "splits_final.json")
                        .read_text())
    for split in splits:
        assert not {c[:5] for c in split["train"]} & {c[:5] for c in split["val"]}


def test_folder_plain_single_channel(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    images, labels = make_folder(tmp_path, cases=3, plain=True, names=("p_0001", "p_0002", "p_0003"))
    assert main(["convert", "folder", "--images", str(images), "--labels", str(labels), "-d", "521",
                 "--name", "Plain", "-np", "1"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset521_Plain"
    assert _listing(out / "imagesTr") == ["p_0001_0000.nii.gz", "p_0002_0000.nii.gz", "p_0003_0000.nii.gz"]
    assert "splits: not written: 3 patient(s)" in capsys.readouterr().out
    assert not (nnunet_env["nnUNet_preprocessed"] / "Dataset521_Plain").exists()


def test_folder_channel_names_must_match(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    images, labels = make_folder(tmp_path, cases=2, channels=2)
    assert main(["convert", "folder", "--images", str(images), "--labels", str(labels), "-d", "522",
                 "--channel-names", "T1"]) == 2
    assert "2 channel(s)" in capsys.readouterr().err


def test_grouped_kfold_keeps_patients_together() -> None:
    cases = {f"p{p}_s{s}": f"p{p}" for p in range(11) for s in range(1 + p % 3)}
    splits = grouped_kfold(cases)
    assert len(splits) == 5
    vals = [set(s["val"]) for s in splits]
    assert set().union(*vals) == set(cases) and sum(len(v) for v in vals) == len(cases)
    for split in splits:
        train_patients = {cases[c] for c in split["train"]}
        assert not train_patients & {cases[c] for c in split["val"]}
    assert max(map(len, vals)) - min(map(len, vals)) <= 3
    assert grouped_kfold(cases) == splits  # deterministic
    with pytest.raises(ValueError):
        grouped_kfold({"a": "a", "b": "b"})
