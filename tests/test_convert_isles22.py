"""ISLES 2022 conversion on fake trees mirroring both published layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_cohorts import (
    FLAIR_SHAPE,
    SHAPE,
    SPACING,
    affine_for,
    flair_affine,
    flair_ramp_at,
    load,
    make_isles22,
    raw_entries,
    save,
)

from nnsynth_datasets.convert import isles22
from nnunet_synth.cli import main


@pytest.mark.parametrize("layout", ["bids", "rawdata"])
def test_isles22_both_layouts(tmp_path: Path, nnunet_env: dict, layout: str, capsys) -> None:
    make_isles22(tmp_path / "src" / "ISLES-2022", subjects=3, layout=layout, adc_suffix="ADC")
    assert main(["convert", "isles22", str(tmp_path / "src"), "--dataset-id", "501", "-np", "1"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset501_ISLES22"
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "DWI", "1": "ADC", "2": "FLAIR"}
    assert dataset["numTraining"] == 3
    case = "sub-strokecase0001_ses-0001"
    dwi, dwi_affine = load(out / "imagesTr" / f"{case}_0000.nii.gz")
    flair, flair_affine = load(out / "imagesTr" / f"{case}_0002.nii.gz")
    label, _ = load(out / "labelsTr" / f"{case}.nii.gz")
    assert dwi.dtype == np.float32 and flair.dtype == np.float32 and label.dtype == np.uint8
    assert flair.shape == dwi.shape == label.shape == SHAPE
    np.testing.assert_allclose(flair_affine, dwi_affine)
    # FLAIR (a ramp in world x on its own larger grid) resampled linearly in physical space
    world_x = (dwi_affine @ np.stack([*np.indices(SHAPE).reshape(3, -1), np.ones(int(np.prod(SHAPE)))]))[0]
    np.testing.assert_allclose(flair.ravel(), flair_ramp_at(101, world_x), atol=1e-3)
    dwi_src = next((tmp_path / "src").rglob("sub-strokecase0001_ses-0001_dwi.nii.gz"))
    np.testing.assert_array_equal(dwi, load(dwi_src)[0])
    # empty masks are real cases: kept and listed
    summary = json.loads((out / "conversion_summary.json").read_text())
    assert summary["empty_masks"] == ["sub-strokecase0002_ses-0001"]
    assert summary["resampled_channels"] == ["FLAIR"]
    assert summary["num_training"] == 3 and summary["num_patients"] == 3
    assert summary["spacing_mm"] == {k: list(SPACING) for k in ("min", "median", "max")}
    assert summary["size_voxels"] == {k: list(SHAPE) for k in ("min", "median", "max")}
    assert summary["lesion_volume_ml"]["max"] == pytest.approx(0.08)  # 4 voxels of 20 mm^3
    assert summary["lesion_volume_ml"]["min"] == 0.0
    assert load(out / "labelsTr" / "sub-strokecase0002_ses-0001.nii.gz")[0].sum() == 0
    assert "empty masks: 1" in capsys.readouterr().out


def test_channel_subset_and_order(tmp_path: Path, nnunet_env: dict) -> None:
    make_isles22(tmp_path / "src", subjects=2)
    assert main(["convert", "isles22", str(tmp_path / "src"), "-d", "502", "--channels", "ADC", "dwi",
                 "-np", "1"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset502_ISLES22"
    assert json.loads((out / "dataset.json").read_text())["channel_names"] == {"0": "ADC", "1": "DWI"}
    assert sorted(p.name for p in (out / "imagesTr").iterdir())[:2] == [
        "sub-strokecase0001_ses-0001_0000.nii.gz", "sub-strokecase0001_ses-0001_0001.nii.gz"]
    src_adc = load(tmp_path / "src/sub-strokecase0001/ses-0001/dwi/sub-strokecase0001_ses-0001_adc.nii.gz")[0]
    np.testing.assert_array_equal(load(out / "imagesTr" / "sub-strokecase0001_ses-0001_0000.nii.gz")[0], src_adc)


def test_flair_resampled_in_physical_space(tmp_path: Path) -> None:
    """A FLAIR that is a linear ramp in world x, on a rotated, flipped grid, stays that ramp on the DWI grid."""
    from nnsynth_datasets.convert.resample import resample_onto

    ref_affine = affine_for(SHAPE)
    theta = np.deg2rad(20)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    src_affine = np.eye(4)
    src_affine[:3, :3] = rot @ np.diag([-1.0, 1.0, 4.0])
    src_affine[:3, 3] = [12.0, -14.0, -14.0]
    shape = (30, 30, 8)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    world = ijk @ src_affine[:3, :3].T + src_affine[:3, 3]
    out = resample_onto((3.0 * world[..., 0] + 100).astype(np.float32), src_affine, SHAPE, ref_affine)
    ref_ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1)
    ref_world = ref_ijk @ ref_affine[:3, :3].T + ref_affine[:3, 3]
    inside = out != 0  # the rotated source does not cover every corner of the reference grid
    assert inside.mean() > 0.9
    np.testing.assert_allclose(out[inside], (3.0 * ref_world[..., 0] + 100)[inside], atol=1e-2)
    labels = resample_onto(np.ones(shape, np.uint8) * 3, src_affine, SHAPE, ref_affine, nearest=True)
    assert set(np.unique(labels)) <= {0, 3}


def test_sessions_give_cases_and_grouped_splits(tmp_path: Path, nnunet_env: dict) -> None:
    make_isles22(tmp_path / "src", subjects=6, sessions=2, empty=())
    assert main(["convert", "isles22", str(tmp_path / "src"), "-d", "503", "-np", "2"]) == 0
    splits = json.loads((nnunet_env["nnUNet_preprocessed"] / "Dataset503_ISLES22" / "splits_final.json")
                        .read_text())
    assert len(splits) == 5
    cases = sorted(p.name for p in (nnunet_env["nnUNet_raw"] / "Dataset503_ISLES22" / "labelsTr").iterdir())
    assert len(cases) == 12
    for split in splits:
        patients = lambda ids: {c.split("_")[0] for c in ids}  # noqa: E731
        assert not patients(split["train"]) & patients(split["val"])
        assert sorted(split["train"] + split["val"]) == [c[: -len(".nii.gz")] for c in cases]


def test_missing_channel_is_named(tmp_path: Path, nnunet_env: dict, capsys) -> None:
    make_isles22(tmp_path / "src", subjects=2)
    (tmp_path / "src/sub-strokecase0002/ses-0001/dwi/sub-strokecase0002_ses-0001_adc.nii.gz").unlink()
    assert main(["convert", "isles22", str(tmp_path / "src"), "-d", "504", "-np", "1"]) == 2
    err = capsys.readouterr().err
    assert "sub-strokecase0002_ses-0001_adc.nii.gz: missing ADC channel" in err
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []


def test_discovery_rejects_unknown_tree(tmp_path: Path) -> None:
    from nnunet_synth.errors import NNSynthError

    save(tmp_path / "x" / "a.nii.gz", np.zeros(SHAPE, np.float32))
    with pytest.raises(NNSynthError, match="does not look like ISLES 2022"):
        isles22.discover(tmp_path / "x")
    with pytest.raises(NNSynthError, match="--channels"):
        isles22.discover(tmp_path / "x", ["dwi", "t1"])


def test_flair_only_goes_onto_the_mask_grid(tmp_path: Path, nnunet_env: dict) -> None:
    """Without DWI/ADC the mask's grid (which is the DWI grid) is the reference for FLAIR."""
    make_isles22(tmp_path / "src", subjects=2, layout="rawdata")
    assert main(["convert", "isles22", str(tmp_path / "src"), "-d", "505", "--channels", "flair", "-np", "1"]) == 0
    out = nnunet_env["nnUNet_raw"] / "Dataset505_ISLES22"
    flair, affine = load(out / "imagesTr" / "sub-strokecase0002_ses-0001_0000.nii.gz")
    assert flair.shape == SHAPE and flair.dtype == np.float32
    np.testing.assert_allclose(affine, affine_for(SHAPE))
    world_x = (affine @ np.stack([*np.indices(SHAPE).reshape(3, -1), np.ones(int(np.prod(SHAPE)))]))[0]
    np.testing.assert_allclose(flair.ravel(), flair_ramp_at(201, world_x), atol=1e-3)


def test_flair_grid_is_larger_than_dwi(tmp_path: Path) -> None:
    """The fake tree mirrors ISLES 2022: FLAIR on another, larger grid than DWI/ADC/mask."""
    make_isles22(tmp_path / "src", subjects=1)
    flair = load(tmp_path / "src/sub-strokecase0001/ses-0001/anat/sub-strokecase0001_ses-0001_FLAIR.nii.gz")
    assert flair[0].shape == FLAIR_SHAPE and np.prod(FLAIR_SHAPE) > np.prod(SHAPE)
    np.testing.assert_allclose(flair[1], flair_affine())
    assert not np.allclose(flair[1], affine_for(SHAPE))


@pytest.mark.parametrize("layout", ["bids", "rawdata"])
def test_missing_mask_is_named(tmp_path: Path, nnunet_env: dict, capsys, layout: str) -> None:
    make_isles22(tmp_path / "src", subjects=2, layout=layout)
    mask = tmp_path / "src/derivatives/sub-strokecase0001/ses-0001/sub-strokecase0001_ses-0001_msk.nii.gz"
    mask.unlink()
    assert main(["convert", "isles22", str(tmp_path / "src"), "-d", "506", "-np", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{mask}: missing lesion mask" in err and "nothing was written" in err
    assert raw_entries(nnunet_env["nnUNet_raw"]) == []
    assert raw_entries(nnunet_env["nnUNet_preprocessed"]) == []
