"""The offline demo cohort (`nnsynth demo-cohort`): nnU-Net layout, determinism, anatomy, lesions."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nnsynth_datasets.demo_cohort import cohort as demo_cohort
from nnsynth_datasets.demo_cohort.anatomy import load_template
from nnsynth_datasets.demo_cohort.cohort import make_demo_cohort, plan_cohort, simulate_subject
from nnsynth_datasets.demo_cohort.lesions import plan_infarcts
from nnunet_synth.cli import main

TINY = ["--spacing", "4"]  # 4 mm grid: about 40x50x42 voxels per subject


def _run(*args: str) -> int:
    return main(["demo-cohort", *args])


def _folder(raw: Path, dataset_id: int) -> Path:
    (folder,) = raw.glob(f"Dataset{dataset_id:03d}_*")
    return folder


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asanyarray(nib.load(p).dataobj)
            for p in sorted(folder.glob("*s*/*.nii.gz"))}


def test_layout_matches_nnunet_raw_format(nnunet_env: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    assert _run("--dataset-id", "990", "--subjects", "6", "--seed", "3", *TINY) == 0
    out = capsys.readouterr().out
    assert "subjects: 6 (train 4, test 2)" in out and "lesion volume" in out
    folder = _folder(nnunet_env["nnUNet_raw"], 990)
    assert folder.name == "Dataset990_NNSynthDemo"
    info = json.loads((folder / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "DWI", "1": "ADC"}
    assert info["labels"] == {"background": 0, "lesion": 1}
    assert info["numTraining"] == 4 and info["file_ending"] == ".nii.gz"
    assert info["name"] == folder.name
    assert info["anatomical_labels"] == {"background": 0, "csf": 1, "gray_matter": 2,
                                         "white_matter": 3, "lesion": 4}
    assert "seed 3" in info["description"] and "4x4x4" in info["reference"]
    facts = json.loads((folder / "demo_cohort.json").read_text())
    for case in facts["cases"]:
        suffix = "Tr" if case["split"] == "train" else "Ts"
        for sub, name in ((f"images{suffix}", f"{case['case']}_0000"), (f"images{suffix}", f"{case['case']}_0001"),
                          (f"labels{suffix}", case["case"]), (f"labelmaps{suffix}", case["case"])):
            assert (folder / sub / f"{name}.nii.gz").is_file()
    assert len(list((folder / "imagesTr").iterdir())) == 8 and len(list((folder / "imagesTs").iterdir())) == 4
    assert (folder / "demo_cohort_preview.png").stat().st_size > 10_000
    assert not list(nnunet_env["nnUNet_raw"].glob(".*partial*"))
    verify_dataset_integrity(str(folder), num_processes=1)


def test_channels_labels_and_facts_agree(nnunet_env: dict[str, Path]) -> None:
    folder = make_demo_cohort(991, subjects=5, seed=4, spacing=4.0, progress=False)
    facts = {c["case"]: c for c in json.loads((folder / "demo_cohort.json").read_text())["cases"]}
    for case, fact in facts.items():
        suffix = "Tr" if fact["split"] == "train" else "Ts"
        images = [nib.load(folder / f"images{suffix}" / f"{case}_{c:04d}.nii.gz") for c in (0, 1)]
        label = nib.load(folder / f"labels{suffix}" / f"{case}.nii.gz")
        labelmap = nib.load(folder / f"labelmaps{suffix}" / f"{case}.nii.gz")
        for img in (*images, label, labelmap):  # one grid, one affine, the chosen spacing
            assert img.shape == images[0].shape
            np.testing.assert_allclose(img.affine, images[0].affine)
            np.testing.assert_allclose(img.header.get_zooms(), (4.0, 4.0, 4.0))
        assert all(img.get_data_dtype() == np.float32 for img in images)
        assert label.get_data_dtype() == np.uint8 and labelmap.get_data_dtype() == np.uint8
        mask, amap = np.asanyarray(label.dataobj), np.asanyarray(labelmap.dataobj)
        assert set(np.unique(mask)) <= {0, 1} and set(np.unique(amap)) <= {0, 1, 2, 3, 4}
        np.testing.assert_array_equal(mask, (amap == 4).astype(np.uint8))
        assert fact["lesion_volume_ml"] == pytest.approx(mask.sum() * 0.064, abs=1e-3)
        assert fact["lesion_free"] == (mask.sum() == 0) == (fact["lesion_count"] == 0)
        assert len(fact["lesion_volumes_ml"]) == fact["lesion_count"] <= 3
        dwi = np.asanyarray(images[0].dataobj)
        assert np.isfinite(dwi).all() and dwi[amap > 0].mean() > 5 * dwi[amap == 0].mean()


def test_same_seed_same_files_any_process_count(nnunet_env: dict[str, Path]) -> None:
    raw = nnunet_env["nnUNet_raw"]
    assert _run("--dataset-id", "992", "--subjects", "4", "--seed", "5", *TINY, "--name", "A") == 0
    assert _run("--dataset-id", "993", "--subjects", "4", "--seed", "5", *TINY, "--name", "B", "-np", "2") == 0
    assert _run("--dataset-id", "994", "--subjects", "4", "--seed", "6", *TINY, "--name", "C") == 0
    a, b, c = (_arrays(_folder(raw, i)) for i in (992, 993, 994))
    assert a.keys() == b.keys() == c.keys() and len(a) == 16
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert any(a[k].shape != c[k].shape or not np.array_equal(a[k], c[k]) for k in a)


def test_lesions_only_in_parenchyma_and_healthy_map_untouched() -> None:
    for index in range(6):
        subject = simulate_subject(index, seed=11, spacing=(4.0, 4.0, 4.0), lesion_free=False)
        lesion = subject.labelmap == 4
        assert lesion.any()
        assert set(np.unique(subject.healthy_labels[lesion])) <= {2, 3}  # never CSF or background
        changed = (subject.labelmap != subject.healthy_labels) & ~lesion
        assert set(np.unique(subject.labelmap[changed])) <= {1}  # only chronic infarcts -> CSF
        assert (subject.fractions[1:, lesion].max(axis=0) >= subject.fractions[0, lesion]).all()


def test_lesion_free_share_and_stratified_split() -> None:
    plan = plan_cohort(40, seed=0, test_fraction=0.25)
    free = [i for i, _, f in plan if f]
    test = [i for i, split, _ in plan if split == "test"]
    assert len(free) == 8 and len(test) == 10
    assert len(set(free) & set(test)) == 2
    assert sorted(s for _, s, _ in plan_cohort(2, seed=0, test_fraction=0.25)) == ["test", "train"]
    assert all(s == "train" for _, s, _ in plan_cohort(5, seed=0, test_fraction=0.0))


def test_lesion_volumes_spread_like_isles22() -> None:
    """Planned totals (many draws) and measured totals (voxels on a 4 mm grid) span ~0.1-100 ml
    with a median of a few ml, as in ISLES 2022 (median about 6 ml)."""
    template = load_template((4.0, 4.0, 4.0))
    planned = [sum(p.volume_ml for p in plan_infarcts(np.random.default_rng([9, i]), template, False))
               for i in range(2000)]
    q05, q50, q95 = np.quantile(planned, [0.05, 0.5, 0.95])
    assert 0.1 <= q05 <= 1.0 and 4.0 <= q50 <= 9.0 and 30.0 <= q95 <= 120.0
    assert min(planned) >= 0.1 - 1e-9 and max(planned) <= 150.0 + 1e-9
    measured = [simulate_subject(i, 2, (4.0, 4.0, 4.0), False).facts["lesion_volume_ml"] for i in range(30)]
    m10, m50, m90 = np.quantile(measured, [0.1, 0.5, 0.9])
    assert 0.06 <= m10 <= 2.0 and 2.0 <= m50 <= 15.0 and 10.0 <= m90 <= 150.0


def test_tissue_and_lesion_contrast() -> None:
    """CSF dark on DWI / bright on ADC, GM a little brighter than WM on DWI, infarcts bright on
    DWI and dark on ADC (measured against normal tissue of the same classes)."""
    ratios = []
    for index in range(3):
        s = simulate_subject(index, seed=0, spacing=(2.0, 2.0, 2.0), lesion_free=False)
        lesion = s.labelmap == 4
        pure = [(s.fractions[k] > 0.85) & ~lesion for k in range(3)]
        dwi = [s.dwi[m].mean() for m in pure]
        adc = [s.adc[m].mean() for m in pure]
        assert dwi[0] < 0.6 * dwi[2] < 0.6 * dwi[1] and adc[0] > adc[1] > adc[2]
        assert 1.03 < dwi[1] / dwi[2] < 1.5
        ratios += [(f["dwi_ratio"], f["adc_ratio"]) for f in s.facts["lesions"]]
    dwi_r, adc_r = np.array(ratios).T
    assert np.median(dwi_r) > 1.2 and np.median(adc_r) < 0.85 and (adc_r < 1).all()


def test_existing_id_refused_and_nothing_left_behind(nnunet_env: dict[str, Path],
                                                     capsys: pytest.CaptureFixture) -> None:
    raw = nnunet_env["nnUNet_raw"]
    assert _run("--dataset-id", "995", "--subjects", "2", *TINY) == 0
    before = _arrays(_folder(raw, 995))
    assert _run("--dataset-id", "995", "--subjects", "3", *TINY, "--name", "Other") == 2
    assert "already used" in capsys.readouterr().err
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset995_NNSynthDemo"]
    assert _arrays(_folder(raw, 995)).keys() == before.keys()
    assert _run("--dataset-id", "995", "--subjects", "3", *TINY, "--name", "Other", "--overwrite") == 0
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset995_Other"]


def test_interrupted_run_leaves_no_partial_folder(nnunet_env: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_write(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("disk full")

    monkeypatch.setattr(demo_cohort, "write_subject", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        make_demo_cohort(996, subjects=3, spacing=4.0, progress=False)
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--subjects", "1"], "--subjects must be at least 2"),
    (["--spacing", "0"], "--spacing must be between"),
    (["--spacing", "-2"], "--spacing must be between"),
    (["--spacing", "2", "2"], "--spacing takes one value or three"),
    (["--test-fraction", "1"], "--test-fraction"),
    (["-np", "0"], "-np must be at least 1"),
    (["--name", "bad name"], "--name"),
])
def test_bad_arguments_are_named(nnunet_env: dict[str, Path], capsys: pytest.CaptureFixture,
                                 args: list[str], message: str) -> None:
    assert _run("--dataset-id", "997", *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(nnunet_env["nnUNet_raw"].iterdir()) == []


def test_acquisition_variants_reimage_the_test_subjects(nnunet_env: dict[str, Path]) -> None:
    import nibabel as nib

    folder = make_demo_cohort(994, subjects=4, spacing=6.0, test_fraction=0.5, progress=False,
                              variants=("scanner-b", "thick-slice"))
    test_ids = sorted(p.name for p in (folder / "labelsTs").iterdir())
    facts = json.loads((folder / "demo_cohort.json").read_text())
    assert sorted(facts["variants"]) == ["scanner-b", "thick-slice"]
    for variant in ("scanner-b", "thick-slice"):
        sub = folder / f"test_{variant}"
        assert sorted(p.name for p in (sub / "labelsTs").iterdir()) == test_ids
        assert len(list((sub / "imagesTs").iterdir())) == 2 * len(test_ids)
        assert len(facts["variants"][variant]["cases"]) == len(test_ids)
    case = test_ids[0].replace(".nii.gz", "")
    base_label = nib.load(folder / "labelsTs" / f"{case}.nii.gz")
    scanner = folder / "test_scanner-b"
    # another scanner: the same subject and lesions, other intensities
    np.testing.assert_array_equal(np.asarray(nib.load(scanner / "labelsTs" / f"{case}.nii.gz").dataobj),
                                  np.asarray(base_label.dataobj))
    base_dwi = np.asarray(nib.load(folder / "imagesTs" / f"{case}_0000.nii.gz").dataobj)
    other_dwi = np.asarray(nib.load(scanner / "imagesTs" / f"{case}_0000.nii.gz").dataobj)
    assert base_dwi.shape == other_dwi.shape and not np.allclose(base_dwi, other_dwi)
    thick = nib.load(folder / "test_thick-slice" / "imagesTs" / f"{case}_0000.nii.gz")
    assert np.allclose(thick.header.get_zooms()[:3], (6.0, 6.0, 12.0))
    lesion_ml = [np.asarray(nib.load(f / "labelsTs" / f"{case}.nii.gz").dataobj).sum() * np.prod(z)
                 for f, z in ((folder, (6, 6, 6)), (folder / "test_thick-slice", (6, 6, 12)))]
    assert (lesion_ml[0] > 0) == (lesion_ml[1] > 0)  # the same lesions, imaged coarser
