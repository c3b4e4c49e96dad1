"""A corpus of bad inputs: each is refused with a message naming the file, and nothing is written."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fake_cohorts import SHAPE, affine_for, image, load, make_atlas2, make_folder, raw_entries, save

from nnunet_synth.cli import main


def _folder_args(root: Path, dataset_id: int = 530, *extra: str) -> list[str]:
    return ["convert", "folder", "--images", str(root / "images"), "--labels", str(root / "labels"),
            "-d", str(dataset_id), "-np", "1", *extra]


def _shifted(path: Path, shift: float) -> Path:
    data, affine = load(path)
    affine = affine.copy()
    affine[0, 3] += shift
    return save(path, data, affine)


def _truncate(path: Path) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.8)])  # header intact, data cut short
    return path


def _nan(path: Path) -> Path:
    data = image(1)
    data[2, 3, 1] = np.nan
    return save(path, data)


def _inf(path: Path) -> Path:
    data = image(1)
    data[0, 0, 0] = -np.inf
    return save(path, data)


def _uncompressed_truncated(path: Path) -> Path:
    target = path.with_name(path.name.replace(".nii.gz", ".nii"))
    target.write_bytes(gzip.decompress(path.read_bytes())[:400])
    path.unlink()
    return target


# (corrupt the file, which file, expected words in the message)
CORPUS: dict[str, tuple[Callable[[Path], Path | None], str, str]] = {
    "missing channel": (lambda p: p.unlink(), "images/case01_0001.nii.gz", "missing image1 channel"),
    "missing mask": (lambda p: p.unlink(), "labels/case01.nii.gz", "missing lesion mask"),
    "shape mismatch": (lambda p: save(p, image(3, (8, 8, 5))), "images/case01_0001.nii.gz", "shape (8, 8, 5)"),
    "mask affine mismatch": (lambda p: _shifted(p, 1.0), "labels/case01.nii.gz", "affine of lesion mask differs"),
    "non-binary mask": (lambda p: save(p, np.full(SHAPE, 2, np.uint8)), "labels/case01.nii.gz",
                        "values other than 0/1"),
    "NaN voxels": (_nan, "images/case01_0000.nii.gz", "NaN/Inf"),
    "Inf voxels": (_inf, "images/case01_0000.nii.gz", "NaN/Inf"),
    "4D image": (lambda p: save(p, np.zeros((*SHAPE, 2), np.float32)), "images/case01_0000.nii.gz", "4D"),
    "garbage file": (lambda p: p.write_bytes(b"not a nifti file at all" * 20), "images/case01_0000.nii.gz",
                     "unreadable"),
    "truncated gzip": (_truncate, "images/case01_0001.nii.gz", "truncated"),
    "truncated .nii": (_uncompressed_truncated, "images/case01_0000.nii.gz", "truncated"),
    "same case twice": (lambda p: save(p.with_name("case01.nii"), np.zeros(SHAPE, np.uint8)),
                        "labels/case01.nii.gz", "stored twice"),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_bad_input_is_refused(tmp_path: Path, nnunet_env: dict, capsys, name: str) -> None:
    corrupt, relative, words = CORPUS[name]
    make_folder(tmp_path / "src", cases=3, channels=2)
    target = tmp_path / "src" / relative
    named = corrupt(target) or target
    assert main(_folder_args(tmp_path / "src")) == 2
    err = capsys.readouterr().err
    assert words in err
    assert f"{named}:" in err or f"{target}:" in err, err
    assert "nothing was written" in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []
    assert raw_entries(nnunet_env["nnUNet_preprocessed"]) == []


def test_every_problem_reported_in_one_pass(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    src = tmp_path / "src"
    make_folder(src, cases=3, channels=2)
    (src / "images" / "case00_0001.nii.gz").unlink()
    _nan(src / "images" / "case01_0000.nii.gz")
    save(src / "labels" / "case02.nii.gz", np.full(SHAPE, 255, np.uint8))
    assert main(_folder_args(src)) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    for f in ("images/case00_0001.nii.gz", "images/case01_0000.nii.gz", "labels/case02.nii.gz"):
        assert str(src / f) in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


def test_skip_invalid_converts_the_rest(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    src = tmp_path / "src"
    make_folder(src, cases=3, channels=2)
    _truncate(src / "images" / "case01_0000.nii.gz")
    assert main(_folder_args(src, 531, "--skip-invalid")) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset531_Folder"
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["case00.nii.gz", "case02.nii.gz"]
    summary = json.loads((out / "conversion_summary.json").read_text())
    assert [s["case"] for s in summary["skipped"]] == ["case01"]
    assert str(src / "images" / "case01_0000.nii.gz") in capsys.readouterr().out
    assert [p.name for p in nnunet_env["nnUNet_raw"].iterdir()] == ["Dataset531_Folder"]


def test_binarize_accepts_label_values(tmp_path: Path, nnunet_env: dict) -> None:
    src = tmp_path / "src"
    make_folder(src, cases=2, channels=1)
    multi = np.zeros(SHAPE, np.uint8)
    multi[1:3, 1:3, 1] = 255
    multi[5, 5, 2] = 2
    save(src / "labels" / "case01.nii.gz", multi)
    assert main(_folder_args(src, 532, "--binarize")) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset532_Folder"
    label = load(out / "labelsTr" / "case01.nii.gz")[0]
    np.testing.assert_array_equal(label, (multi > 0).astype(np.uint8))
    assert json.loads((out / "conversion_summary.json").read_text())["binarized_masks"] == ["case01"]


def test_affine_within_tolerance_is_accepted(tmp_path: Path, nnunet_env: dict) -> None:
    src = tmp_path / "src"
    make_folder(src, cases=2, channels=2)
    _shifted(src / "labels" / "case01.nii.gz", 1e-4)
    assert main(_folder_args(src, 533)) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset533_Folder"
    # written on the channel grid exactly, so nnU-Net's own geometry check is satisfied
    np.testing.assert_array_equal(load(out / "labelsTr" / "case01.nii.gz")[1],
                                  load(out / "imagesTr" / "case01_0000.nii.gz")[1])


def test_duplicate_case_ids(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    make_atlas2(tmp_path / "ATLAS_2", train=2, test=0)
    twin = tmp_path / "ATLAS_2" / "Training" / "R009" / "sub-r001s001" / "ses-1" / "anat"
    for f in (tmp_path / "ATLAS_2" / "Training" / "R001" / "sub-r001s001" / "ses-1" / "anat").iterdir():
        save(twin / f.name, load(f)[0], affine_for(SHAPE))
    assert main(["convert", "atlas2", str(tmp_path / "ATLAS_2"), "-d", "534", "-np", "1"]) == 2
    err = capsys.readouterr().err
    assert "duplicate case id 'sub-r001s001_ses-1'" in err and str(twin) in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


def test_existing_dataset_id(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    src = tmp_path / "src"
    make_folder(src, cases=2, channels=1)
    assert main(_folder_args(src, 535)) == 0
    existing = nnunet_env["nnUNet_raw"] / "Dataset535_Folder"
    marker = existing / "keep.txt"
    marker.write_text("user data")
    capsys.readouterr()
    assert main(_folder_args(src, 535, "--name", "Other")) == 2
    assert "already used" in capsys.readouterr().err and marker.is_file()
    assert raw_entries(nnunet_env["nnUNet_raw"]) == ["Dataset535_Folder"]
    assert main(_folder_args(src, 535, "--name", "Other", "--overwrite")) == 0
    assert raw_entries(nnunet_env["nnUNet_raw"]) == ["Dataset535_Other"]


def test_interrupted_run_leaves_nothing(tmp_path: Path, nnunet_env: dict, monkeypatch) -> None:
    from nnsynth_datasets.convert import writer

    src = tmp_path / "src"
    make_folder(src, cases=3, channels=1)
    calls = []
    real_save = writer.save_on_grid

    def flaky_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(writer, "save_on_grid", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        main(_folder_args(src, 536))
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


def test_duplicates_skipped_with_skip_invalid(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    make_atlas2(tmp_path / "ATLAS_2", train=3, test=0)
    twin = tmp_path / "ATLAS_2" / "Training" / "R009" / "sub-r001s001" / "ses-1" / "anat"
    for f in (tmp_path / "ATLAS_2" / "Training" / "R001" / "sub-r001s001" / "ses-1" / "anat").iterdir():
        save(twin / f.name, load(f)[0], affine_for(SHAPE))
    assert main(["convert", "atlas2", str(tmp_path / "ATLAS_2"), "-d", "537", "-np", "1", "--skip-invalid"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset537_ATLAS2"
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["sub-r001s002_ses-1.nii.gz",
                                                                    "sub-r001s003_ses-1.nii.gz"]
    skipped = json.loads((out / "conversion_summary.json").read_text())["skipped"]
    assert [s["case"] for s in skipped] == ["sub-r001s001_ses-1"] * 2
    assert all(len(s["problems"]) == 1 for s in skipped)


def test_flair_outside_the_dwi_field_of_view(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    from fake_cohorts import FLAIR_SHAPE, make_isles22

    make_isles22(tmp_path / "src", subjects=2)
    flair = tmp_path / "src/sub-strokecase0001/ses-0001/anat/sub-strokecase0001_ses-0001_FLAIR.nii.gz"
    save(flair, image(5, FLAIR_SHAPE), affine_for(FLAIR_SHAPE, origin=(500.0, 0.0, 0.0)))
    assert main(["convert", "isles22", str(tmp_path / "src"), "-d", "538", "-np", "1"]) == 2
    assert f"{flair}: field of view of FLAIR channel does not contain" in capsys.readouterr().err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


@pytest.mark.parametrize("args, words", [
    (["convert", "isles22", "/nonexistent/ISLES", "-d", "539"], "is not a folder"),
    (["convert", "atlas2", "{tmp}", "-d", "539"], "does not look like ATLAS"),
    (["convert", "isles15", "{tmp}", "-d", "539"], "does not look like ISLES 2015"),
    (["convert", "folder", "--images", "{tmp}", "--labels", "{tmp}", "-d", "1000"], "no .nii"),
])
def test_unusable_sources(tmp_path: Path, nnunet_env: dict, capsys, args: list[str], words: str) -> None:
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    assert words in capsys.readouterr().err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []


def test_dataset_id_range(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    make_folder(tmp_path / "src", cases=1, channels=1)
    assert main(_folder_args(tmp_path / "src", 1000)) == 2
    assert "between 1 and 999" in capsys.readouterr().err
