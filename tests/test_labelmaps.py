"""Anatomical label maps: estimated on the phantom, imported from FreeSurfer-style segmentations."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from phantom import LABELS, write_phantom_dataset

from nnsynth_datasets.labelmaps.agreement import dice_per_class, labelmap_agreement
from nnsynth_datasets.labelmaps.estimate import pick_channel
from nnsynth_datasets.labelmaps.imported import relabel
from nnunet_synth.cli import main
from nnunet_synth.errors import NNSynthError


@pytest.fixture
def phantom(nnunet_env: dict) -> Path:
    folder = write_phantom_dataset(nnunet_env["nnUNet_raw"], 900, n_cases=3)
    dataset = json.loads((folder / "dataset.json").read_text())
    del dataset["anatomical_labels"]  # as after a conversion: labelmaps must add it
    (folder / "dataset.json").write_text(json.dumps(dataset))
    return folder


def _cases(folder: Path) -> list[str]:
    return sorted(p.name[: -len(".nii.gz")] for p in (folder / "labelsTr").iterdir())


def test_estimated_maps_match_the_phantom(phantom: Path, tmp_path: Path, capsys) -> None:
    truth = tmp_path / "truth"
    (phantom / "labelmapsTr").rename(truth)
    # the phantom's grey-matter shell is one or two voxels thick: no pre-smoothing here
    assert main(["labelmaps", "-d", "900", "--channel", "DWI", "--smooth", "0", "--reference", str(truth)]) == 0
    out = capsys.readouterr().out
    assert "gray_matter" in out and "estimated from DWI (dwi)" in out
    agreement = labelmap_agreement(phantom / "labelmapsTr", truth, LABELS)
    assert agreement["cases"] == 3
    for tissue in ("csf", "gray_matter", "white_matter"):
        assert agreement["mean_dice"][tissue] > 0.85, agreement["mean_dice"]
    assert agreement["mean_dice"]["lesion"] == 1.0
    case = _cases(phantom)[0]
    made = nib.load(phantom / "labelmapsTr" / f"{case}.nii.gz")
    image = nib.load(phantom / "imagesTr" / f"{case}_0000.nii.gz")
    assert made.get_data_dtype() == np.uint8 and made.shape == image.shape
    np.testing.assert_allclose(made.affine, image.affine)
    assert json.loads((phantom / "dataset.json").read_text())["anatomical_labels"] == LABELS
    assert sorted(p.name for p in phantom.iterdir() if p.name.startswith(".")) == []


def test_existing_maps_need_overwrite(phantom: Path, capsys) -> None:
    before = (phantom / "labelmapsTr" / "ph_000.nii.gz").read_bytes()
    assert main(["labelmaps", "-d", "900", "--channel", "DWI"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (phantom / "labelmapsTr" / "ph_000.nii.gz").read_bytes() == before
    assert main(["labelmaps", "-d", "900", "--channel", "DWI", "--overwrite", "-np", "2"]) == 0
    assert len(list((phantom / "labelmapsTr").iterdir())) == 3


def _freesurfer_like(truth: np.ndarray) -> np.ndarray:
    """Upsample a 2 mm phantom map to 1 mm and relabel it with FreeSurfer aseg numbers."""
    up = truth.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    left = np.broadcast_to(np.arange(up.shape[0])[:, None, None] < up.shape[0] // 2, up.shape)
    seg = np.zeros(up.shape, np.int32)
    seg[up == 1] = np.where(left, 4, 43)[up == 1]
    seg[up == 2] = np.where(left, 1001, 2001)[up == 2]  # aparc cortical parcels
    seg[(up == 3) | (up == 4)] = np.where(left, 2, 41)[(up == 3) | (up == 4)]
    return seg


def test_import_freesurfer_segmentations(phantom: Path, tmp_path: Path) -> None:
    source = tmp_path / "fs"
    fs_affine = np.eye(4)  # 1 mm voxels whose centres include every 2 mm phantom voxel centre
    for i, case in enumerate(_cases(phantom)):
        truth = np.asanyarray(nib.load(phantom / "labelmapsTr" / f"{case}.nii.gz").dataobj)
        seg = _freesurfer_like(truth)
        if i == 0:  # FreeSurfer's own layout and format
            (source / case / "mri").mkdir(parents=True)
            nib.save(nib.MGHImage(seg, fs_affine), source / case / "mri" / "aseg.mgz")
        else:
            source.mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(seg, fs_affine), source / f"{case}.nii.gz")
    truth_dir = tmp_path / "truth"
    (phantom / "labelmapsTr").rename(truth_dir)
    assert main(["labelmaps", "-d", "900", "--from", str(source), "--mapping", "freesurfer"]) == 0
    for case in _cases(phantom):
        made = np.asanyarray(nib.load(phantom / "labelmapsTr" / f"{case}.nii.gz").dataobj)
        truth = np.asanyarray(nib.load(truth_dir / f"{case}.nii.gz").dataobj)
        np.testing.assert_array_equal(made, truth)  # lesion class comes back from labelsTr


def test_import_refuses_unmapped_labels_and_writes_nothing(phantom: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "seg"
    source.mkdir()
    for case in _cases(phantom):
        truth = np.asanyarray(nib.load(phantom / "labelmapsTr" / f"{case}.nii.gz").dataobj)
        nib.save(nib.Nifti1Image(truth.astype(np.int16) * 10, nib.load(
            phantom / "imagesTr" / f"{case}_0000.nii.gz").affine), source / f"{case}_synthseg.nii.gz")
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"10": "csf", "20-29": "gray_matter"}))
    (phantom / "labelmapsTr").rename(tmp_path / "old")
    assert main(["labelmaps", "-d", "900", "--from", str(source), "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err
    assert "ph_000_synthseg.nii.gz: label(s) 30, 40 not in the mapping" in err
    assert not (phantom / "labelmapsTr").exists()
    assert [p.name for p in phantom.iterdir() if p.name.startswith(".")] == []
    mapping.write_text(json.dumps({"10": "csf", "20-29": "gray_matter", "*": "white_matter"}))
    assert main(["labelmaps", "-d", "900", "--from", str(source), "--mapping", str(mapping)]) == 0
    made = np.asanyarray(nib.load(phantom / "labelmapsTr" / "ph_000.nii.gz").dataobj)
    np.testing.assert_array_equal(made, np.asanyarray(nib.load(tmp_path / "old" / "ph_000.nii.gz").dataobj))


def test_missing_segmentation_is_named(phantom: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["labelmaps", "-d", "900", "--from", str(tmp_path / "empty"), "--mapping", "freesurfer",
                 "--output", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'empty' / 'ph_000.nii.gz'}: no segmentation for case ph_000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pick_channel_prefers_tissue_contrast() -> None:
    assert pick_channel({0: "DWI", 1: "ADC"}, None, None, True) == (1, "adc")
    assert pick_channel({0: "DWI", 1: "ADC", 2: "FLAIR"}, None, None, True) == (2, "flair")
    assert pick_channel({0: "T1w"}, None, None, True) == (0, "t1")
    assert pick_channel({0: "DWI", 1: "ADC"}, "dwi", None, True) == (0, "dwi")
    assert pick_channel({0: "scan"}, "0", "t2", True) == (0, "t2")
    with pytest.raises(NNSynthError, match="--contrast"):
        pick_channel({0: "scan"}, None, None, True)
    with pytest.raises(NNSynthError, match="no channel"):
        pick_channel({0: "DWI"}, "T1", None, True)


def test_dice_and_relabel() -> None:
    ref = np.array([0, 1, 1, 2, 2, 3])
    assert dice_per_class(ref, ref, LABELS) == {"csf": 1.0, "gray_matter": 1.0, "white_matter": 1.0}
    assert dice_per_class(np.array([0, 1, 2, 2, 2, 3]), ref, LABELS)["csf"] == pytest.approx(2 / 3)
    out = relabel(np.array([0, 4, 1005, 77]), {4: 1, 1005: 2}, 3, Path("x"))
    np.testing.assert_array_equal(out, [0, 1, 2, 3])


def test_demo_cohort_agreement(nnunet_env: dict, tmp_path: Path) -> None:
    """On the demo cohort (known maps, DWI/ADC only) the default channel is ADC and beats DWI."""
    demo = pytest.importorskip("nnsynth_datasets.demo_cohort.cohort")
    from nnsynth_datasets.labelmaps.make import make_labelmaps

    folder = demo.make_demo_cohort(991, subjects=4, spacing=4.0, test_fraction=0.25, progress=False)
    truth = folder / "labelmapsTr"
    auto = make_labelmaps(991, output=tmp_path / "auto", reference=truth, progress=False)
    dwi = make_labelmaps(991, channel="DWI", output=tmp_path / "dwi", reference=truth, progress=False)
    assert auto["channel"] == "ADC"
    for tissue in ("gray_matter", "white_matter"):
        assert auto["agreement"]["mean_dice"][tissue] > 0.55, auto["agreement"]["mean_dice"]
        assert auto["agreement"]["mean_dice"][tissue] > dwi["agreement"]["mean_dice"][tissue]


def test_with_test_cases(phantom: Path, capsys) -> None:
    (phantom / "imagesTs").mkdir()
    for c in (0, 1):
        (phantom / "imagesTs" / f"ts_000_{c:04d}.nii.gz").write_bytes(
            (phantom / "imagesTr" / f"ph_000_{c:04d}.nii.gz").read_bytes())
    assert main(["labelmaps", "-d", "900", "--channel", "DWI", "--with-test", "--overwrite"]) == 0
    made = np.asanyarray(nib.load(phantom / "labelmapsTs" / "ts_000.nii.gz").dataobj)
    assert set(np.unique(made)) == {0, 1, 2, 3}  # no labelsTs: no lesion class
    assert "labelmapsTr, " in capsys.readouterr().out


def test_truncated_image_is_named(phantom: Path, tmp_path: Path, capsys) -> None:
    image = phantom / "imagesTr" / "ph_001_0000.nii.gz"
    image.write_bytes(image.read_bytes()[:600])
    assert main(["labelmaps", "-d", "900", "--channel", "DWI", "--output", str(tmp_path / "out")]) == 2
    assert f"{image}: unreadable or truncated image" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preprocessed", "raw", "results"]
