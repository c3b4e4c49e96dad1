"""Shared fixtures: every test gets its own nnU-Net folders and a small CPU budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep nnU-Net and torch light on the 2-core CI machine.
os.environ.setdefault("nnUNet_n_proc_DA", "0")
os.environ.setdefault("nnUNet_def_n_proc", "1")
os.environ.setdefault("nnUNet_compile", "f")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def nnunet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point nnUNet_raw / nnUNet_preprocessed / nnUNet_results at fresh folders under tmp_path."""
    paths = {}
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"),
                     ("nnUNet_results", "results")):
        folder = tmp_path / sub
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
        paths[var] = folder
    return paths


def run_nnunet(command: list[str], env: dict[str, str], timeout: int = 900) -> str:
    """Run a real nnU-Net / nnsynth console command; fail with its output when it fails."""
    import subprocess
    import sys

    exe = Path(sys.executable).parent / command[0]
    proc = subprocess.run([str(exe), *command[1:]], env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc.stdout


def plan_and_preprocess(dataset_id: int, env: dict[str, str]) -> str:
    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for 0
    return run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "3d_fullres", "-np", "1"],
                      {**env, "nnUNet_n_proc_DA": "1"})


@pytest.fixture(scope="session")
def phantom_preprocessed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 6-case phantom dataset (id 900), planned and preprocessed by nnU-Net once per session."""
    from phantom import write_phantom_dataset

    root = tmp_path_factory.mktemp("phantom_nnunet")
    env = dict(os.environ)
    paths = {}
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"),
                     ("nnUNet_results", "results")):
        (root / sub).mkdir()
        env[var] = str(root / sub)
        paths[var] = root / sub
    write_phantom_dataset(paths["nnUNet_raw"], 900, n_cases=6)
    plan_and_preprocess(900, env)
    return paths


@pytest.fixture
def phantom_env(phantom_preprocessed: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point the nnU-Net variables at the session's phantom dataset."""
    for var, path in phantom_preprocessed.items():
        monkeypatch.setenv(var, str(path))
    return phantom_preprocessed


@pytest.fixture
def phantom_2d_env(phantom_env: dict[str, Path]) -> dict[str, Path]:
    """The phantom with nnU-Net's 2d configuration preprocessed too (its plans hold it; only 3d_fullres was run)."""
    if not (phantom_env["nnUNet_preprocessed"] / "Dataset900_Phantom" / "nnUNetPlans_2d").is_dir():
        run_nnunet(["nnUNetv2_preprocess", "-d", "900", "-c", "2d", "-np", "1"], dict(os.environ))
    return phantom_env
