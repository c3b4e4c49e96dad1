"""kill -9 at any moment leaves whole data behind: no orphan workers, no half dataset, no broken checkpoint.

Each test runs the real command in a subprocess and kills it with SIGKILL while it writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.slow
NNSYNTH = str(Path(sys.executable).parent / "nnsynth")


def _cohort(root: Path, cases: int, size: int = 48, seed: int = 0) -> Path:
    """images/ + labels/ with `cases` cases of size^3 voxels (big enough that converting takes seconds)."""
    rng = np.random.default_rng(seed)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(cases):
        nib.save(nib.Nifti1Image(rng.random((size,) * 3, dtype=np.float32), affine),
                 root / "images" / f"c{i:03d}_0000.nii.gz")
        lesion = np.zeros((size,) * 3, np.uint8)
        lesion[10:14, 10:14, 10:14] = 1
        nib.save(nib.Nifti1Image(lesion, affine), root / "labels" / f"c{i:03d}.nii.gz")
    return root


def _convert_cmd(cohort: Path, dataset_id: int, *extra: str) -> list[str]:
    return [NNSYNTH, "convert", "folder", "--images", str(cohort / "images"), "--labels", str(cohort / "labels"),
            "-d", str(dataset_id), "--name", "Kill", *extra]


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _staged_files(raw: Path) -> int:
    return sum(len(list(p.rglob("*.nii.gz"))) for p in raw.glob(".Dataset*.partial-*"))


def _wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _whole(folder: Path) -> int:
    """Number of training cases of a complete dataset (summary and files agree), else fail."""
    summary = json.loads((folder / "conversion_summary.json").read_text())
    n = len(list((folder / "labelsTr").glob("*.nii.gz")))
    images = len(list((folder / "imagesTr").glob("*.nii.gz")))
    assert n == images == summary["num_training"], (folder, n, images, summary["num_training"])
    return n


def test_killed_parallel_convert_leaves_no_orphans_and_no_half_dataset(tmp_path, nnunet_env):
    cohort = _cohort(tmp_path / "cohort", cases=60)
    raw = nnunet_env["nnUNet_raw"]
    proc = subprocess.Popen(_convert_cmd(cohort, 540, "-np", "2"), env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: _staged_files(raw) >= 4, 120), "conversion never started writing"
        workers = _children(proc.pid)
        assert workers, "no worker processes"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_for(lambda: not any(_alive(w) for w in workers), 10), "workers outlived their parent"
        written = _staged_files(raw)
        time.sleep(1.5)
        assert _staged_files(raw) == written  # nobody is still writing
        assert not list(raw.glob("Dataset540_*"))  # no half dataset under nnU-Net's name
    finally:
        if proc.poll() is None:
            proc.kill()
    rerun = subprocess.run(_convert_cmd(cohort, 540, "-np", "2"), env=dict(os.environ), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "left by an interrupted earlier run" in rerun.stdout + rerun.stderr
    assert _whole(raw / "Dataset540_Kill") == 60
    assert not list(raw.glob(".Dataset540_*"))  # the stale staging folder is gone


def test_overwrite_killed_at_random_moments_keeps_the_old_or_the_new_dataset_whole(tmp_path, nnunet_env):
    old, new = _cohort(tmp_path / "old", cases=6, seed=1), _cohort(tmp_path / "new", cases=24, seed=2)
    raw = nnunet_env["nnUNet_raw"]
    env = dict(os.environ)
    subprocess.run(_convert_cmd(old, 541, "-np", "1"), env=env, check=True, capture_output=True, timeout=300)
    target = raw / "Dataset541_Kill"
    assert _whole(target) == 6
    start = time.monotonic()
    subprocess.run(_convert_cmd(new, 541, "-np", "1", "--overwrite"), env=env, check=True, capture_output=True,
                   timeout=300)
    full = time.monotonic() - start
    assert _whole(target) == 24
    seen = set()
    rng = np.random.default_rng(0)
    for delay in [*rng.uniform(0.2, 1.1 * full, 6), 0.97 * full, 0.99 * full]:
        source = old if _whole(target) == 24 else new  # alternate, so each kill can replace a whole dataset
        proc = subprocess.Popen(_convert_cmd(source, 541, "-np", "1", "--overwrite"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert target.is_dir(), f"no dataset under {target.name} after a kill at {delay:.2f} s"
        seen.add(_whole(target))
    assert seen <= {6, 24}


def test_killed_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "maskgan_fold0.pt"
    writer = tmp_path / "writer.py"
    writer.write_text(textwrap.dedent(f"""
        import torch
        from nnunet_synth.generators.checkpoint import GeneratorCheckpoint, load_checkpoint, save_checkpoint
        base = load_checkpoint({str(Path(__file__).resolve().parent / "data" / "maskgan_v1.pt")!r})
        big = {{"w": torch.randn(4_000_000)}}  # 16 MB, so a write takes a while
        step = 0
        while True:
            step += 1
            ckpt = GeneratorCheckpoint(base.kind, base.config, {{**base.state_dicts, "critic": big}}, base.fingerprint,
                                       step=step, extra=base.extra)
            save_checkpoint({str(path)!r}, ckpt)
            print(step, flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(writer)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "1"  # one whole checkpoint exists
        time.sleep(float(np.random.default_rng(1).uniform(0.1, 1.5)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    from nnunet_synth.generators.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(path)  # the last complete write, never a torn one
    assert ckpt.step >= 1 and ckpt.state_dicts["critic"]["w"].numel() == 4_000_000
    save_checkpoint(path, ckpt)  # the next write removes what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["maskgan_fold0.pt", "writer.py"])


def test_a_worker_whose_parent_died_before_it_started_exits_at_once():
    """The parent's pid comes from the parent: a worker that finds another parent (init) exits."""
    code = ("import os, time\nfrom nnsynth_datasets.workers import die_with_parent\n"
            "die_with_parent(os.getpid())  # never its own parent: stands for a parent that is gone\n"
            "time.sleep(30)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 1
    assert time.monotonic() - started < 20
