"""nnsynth export: real + synthetic raw dataset whose splits keep synthetic cases out of validation."""

import json

import nibabel as nib
import numpy as np

from nnunet_synth.cli import main


def test_export_writes_valid_dataset_and_leak_free_splits(phantom_env, capsys):
    raw_root, pre_root = phantom_env["nnUNet_raw"], phantom_env["nnUNet_preprocessed"]
    try:
        assert main(["export", "-d", "900", "--n", "5", "--out-id", "950", "--folds", "0", "1", "--overwrite"]) == 0
        out = raw_root / "Dataset950_PhantomSynth"
        ds = json.loads((out / "dataset.json").read_text())
        synth = sorted(p.name[: -len(".nii.gz")] for p in (out / "labelsTr").glob("synth_*.nii.gz"))
        assert len(synth) == 5 and ds["numTraining"] == 6 + 5
        assert ds["channel_names"] == {"0": "DWI", "1": "ADC"} and "anatomical_labels" in ds
        for case in synth:
            seg = nib.load(str(out / "labelsTr" / f"{case}.nii.gz"))
            img = nib.load(str(out / "imagesTr" / f"{case}_0001.nii.gz"))
            lm = np.asarray(nib.load(str(out / "labelmapsTr" / f"{case}.nii.gz")).dataobj)
            assert seg.shape == img.shape == lm.shape
            np.testing.assert_allclose(seg.header.get_zooms(), (2.0, 2.0, 2.0))
            labels = np.asarray(seg.dataobj)
            assert set(np.unique(labels)) <= {0, 1} and labels.any()
            assert ((lm == 4) == (labels == 1)).all()
        from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

        verify_dataset_integrity(str(out), num_processes=1)   # nnU-Net itself accepts the dataset
        splits = json.loads((pre_root / "Dataset950_PhantomSynth" / "splits_final.json").read_text())
        source = json.loads((pre_root / "Dataset900_Phantom" / "splits_final.json").read_text()) \
            if (pre_root / "Dataset900_Phantom" / "splits_final.json").is_file() else None
        assert len(splits) == 5
        for k, split in enumerate(splits):
            assert not any(c.startswith("synth_") for c in split["val"])
            made_here = [c for c in split["train"] if c.startswith("synth_")]
            assert all(c.startswith(f"synth_f{k}_") for c in made_here)
            if source:
                assert split["val"] == source[k]["val"]
        assert {len([c for c in s["train"] if c.startswith("synth_")]) for s in splits[:2]} == {2, 3}
        # a second export to the same id is refused without --overwrite, and leaves nothing behind
        assert main(["export", "-d", "900", "--n", "1", "--out-id", "950"]) == 2
        assert "already used" in capsys.readouterr().err
        assert not [p for p in raw_root.iterdir() if p.name.startswith(".")]
    finally:
        import shutil

        shutil.rmtree(raw_root / "Dataset950_PhantomSynth", ignore_errors=True)
        shutil.rmtree(pre_root / "Dataset950_PhantomSynth", ignore_errors=True)
