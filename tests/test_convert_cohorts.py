"""ATLAS v2.0, ISLES 2015 and plain-folder conversion on fake trees mirroring their layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_cohorts import isles15_file, load, make_atlas2, make_folder, make_isles15, raw_entries

from nnsynth_datasets.splits import grouped_kfold
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


def test_folder_plain_names_ending_in_digits_with_a_missing_mask(tmp_path: Path, nnunet_env: dict,
                                                                  capsys) -> None:
    """p_0003.nii.gz without its mask is one plain case lacking a mask, not channel 3 of a case 'p'."""
    images, labels = make_folder(tmp_path, cases=3, plain=True, names=("p_0001", "p_0002", "p_0003"))
    (labels / "p_0003.nii.gz").unlink()
    assert main(["convert", "folder", "--images", str(images), "--labels", str(labels), "-d", "523",
                 "-np", "1"]) == 2
    err = capsys.readouterr().err
    assert "1 problem(s)" in err and f"{labels / 'p_0003.nii.gz'}: missing lesion mask" in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


def test_folder_bad_patient_pattern(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    images, labels = make_folder(tmp_path, cases=2, channels=1)
    assert main(["convert", "folder", "--images", str(images), "--labels", str(labels), "-d", "524",
                 "--patient-pattern", "^(sub-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnsynth convert: error: --patient-pattern '^(sub-' is not a regular expression")
    assert "Traceback" not in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


def _atlas_missing_t1(root: Path) -> Path:
    target = next((root / "Training" / "R001" / "sub-r001s002").rglob("*_T1w.nii.gz"))
    target.unlink()
    return target


def _atlas_missing_mask(root: Path) -> Path:
    target = next((root / "Training" / "R001" / "sub-r001s001").rglob("*_label-L_desc-T1lesion_mask.nii.gz"))
    target.unlink()
    return target


def _isles15_missing_ot(root: Path) -> Path:
    folder = next((root / "Training" / "2").glob("*.OT.*"))
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    return root / "Training" / "2" / "*OT*.nii"


def _isles15_missing_dwi(root: Path) -> Path:
    folder = next((root / "Training" / "1").glob("*.MR_DWI.*"))
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    return root / "Training" / "1" / "*MR_dwi*.nii"


def _isles15_two_flairs(root: Path) -> Path:
    first = next((root / "Training" / "1").glob("*.MR_Flair.*"))
    extra = isles15_file(root / "Training" / "1", "MR_Flair", 99999)
    extra.parent.mkdir()
    extra.write_bytes(next(first.iterdir()).read_bytes())
    return root / "Training" / "1"


@pytest.mark.parametrize("cohort, corrupt, words", [
    ("atlas2", _atlas_missing_t1, "missing T1w channel"),
    ("atlas2", _atlas_missing_mask, "missing lesion mask"),
    ("isles15", _isles15_missing_ot, "missing lesion mask"),
    ("isles15", _isles15_missing_dwi, "missing DWI channel"),
    ("isles15", _isles15_two_flairs, "several flair files"),
])
def test_cohort_layout_problems_are_named(tmp_path: Path, nnunet_env: dict, capsys, cohort: str,
                                          corrupt, words: str) -> None:
    root = tmp_path / "src" / ("ATLAS_2" if cohort == "atlas2" else "SISS2015")
    (make_atlas2(root, train=2, test=1) if cohort == "atlas2" else make_isles15(root, cases=2))
    named = corrupt(root)
    assert main(["convert", cohort, str(tmp_path / "src"), "-d", "525", "-np", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{named}: {words}" in err, err
    assert "nothing was written" in err and "Traceback" not in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []
    assert raw_entries(nnunet_env["nnUNet_preprocessed"]) == []


def test_parallel_workers_report_problems_and_write_nothing(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    """-np 2 (spawned workers, shared stop flag): every problem reported, the staging folder removed."""
    root = tmp_path / "ATLAS_2"
    make_atlas2(root, train=4, test=0)
    mask = _atlas_missing_mask(root)
    t1 = next((root / "Training" / "R001" / "sub-r001s004").rglob("*_T1w.nii.gz"))
    t1.write_bytes(t1.read_bytes()[:300])
    assert main(["convert", "atlas2", str(root), "-d", "526", "-np", "2"]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and f"{mask}: missing lesion mask" in err
    assert f"{t1}: unreadable or truncated T1w channel" in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


def test_isles15_mask_folder_matched_by_ot(tmp_path: Path) -> None:
    """Released SISS trees also name the mask folder VSD.Brain_3more.XX.O.OT.<id>: any *OT* part counts."""
    from nnsynth_datasets.convert import isles15

    root = make_isles15(tmp_path / "SISS2015", cases=2)
    old = next((root / "Training" / "2").glob("*.OT.*"))
    new = old.with_name(old.name.replace("VSD.Brain.", "VSD.Brain_3more."))
    (old / f"{old.name}.nii").rename(old / f"{new.name}.nii")
    old.rename(new)
    cases = isles15.discover(tmp_path).cases
    assert [c.case_id for c in cases] == ["siss001", "siss002"]
    assert cases[1].mask == new / f"{new.name}.nii"
    assert [name for name, _ in cases[1].channels] == ["FLAIR", "DWI", "T1", "T2"]
