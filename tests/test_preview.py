"""`nnsynth preview`: the cases a trainer would train on, built exactly as the trainer builds its engine."""

import json

import nibabel as nib
import numpy as np

from nnunet_synth.cli import main


def test_preview_writes_cases_mosaic_and_provenance(phantom_env, tmp_path, capsys, monkeypatch):
    out = tmp_path / "preview"
    assert main(["preview", "-d", "900", "-tr", "nnUNetTrainerSynth_p25", "-f", "0", "-n", "3", "-o", str(out)]) == 0
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["trainer"] == "nnUNetTrainerSynth_p25" and provenance["settings"]["fraction"] == 0.25
    assert sorted(provenance["cases"]) == ["preview_000", "preview_001", "preview_002"]
    assert all(c["lesion_voxels"] > 0 and c["lesion_source"] != c["anatomy"] for c in provenance["cases"].values())
    assert any("synthesis engine ready" in line for line in provenance["engine"])
    image = nib.load(out / "images" / "preview_000_0000.nii.gz")
    label = np.asarray(nib.load(out / "labels" / "preview_000.nii.gz").dataobj)
    labelmap = np.asarray(nib.load(out / "labelmaps" / "preview_000.nii.gz").dataobj)
    assert image.shape == label.shape == labelmap.shape and set(np.unique(label)) <= {0, 1}
    assert (labelmap[label == 1] == 4).all()  # the lesion class of the label map is the segmentation
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "synthetic fraction of each training batch: 0.25" in capsys.readouterr().out


def test_preview_follows_the_environment_and_refuses_what_it_cannot_show(phantom_env, tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("NNSYNTH_FRACTION", "0.75")
    out = tmp_path / "p"
    assert main(["preview", "-d", "900", "-n", "1", "-o", str(out)]) == 0
    assert json.loads((out / "provenance.json").read_text())["settings"]["fraction"] == 0.75
    assert main(["preview", "-d", "900", "-n", "1", "-o", str(out)]) == 2  # not an empty folder
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["preview", "-d", "900", "-tr", "nnUNetTrainerBudget", "-o", str(tmp_path / "q")]) == 2
    assert "mixes no synthetic cases" in capsys.readouterr().err
    assert main(["preview", "-d", "900", "-tr", "nnUNetTrainerSynthSPADE", "-o", str(tmp_path / "r")]) == 2
    assert "nnsynth train-maskgan" in capsys.readouterr().err
    assert not (tmp_path / "q").exists() and not (tmp_path / "r").exists()
