"""Benchmark `nnsynth convert isles22` against the I/O floor (plain nibabel read + write of the same files).

Builds an ISLES 2022-shaped fake cohort of realistic sizes in a temporary folder (DWI/ADC 112x112x72
float32 at 2 mm, FLAIR 384x384x30 int16 on its own grid, uint8 masks), then times
  * the floor: every source file loaded with nibabel and written back unchanged (one process);
  * the converter: discovery, validation, FLAIR resampling onto the DWI grid, writing, summary;
and prints cases/s for both. Target: the converter within 2x of the floor (ratio >= 0.5).

    nice .venv/bin/python scripts/bench_convert.py [--cases 20] [-np 1 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

DWI_SHAPE, DWI_SPACING = (112, 112, 72), (2.0, 2.0, 2.0)
FLAIR_SHAPE = (384, 384, 30)


def _affine(shape: tuple[int, ...], fov: np.ndarray) -> np.ndarray:
    affine = np.diag([*(fov / np.array(shape)), 1.0])
    affine[:3, 3] = -fov / 2
    return affine


def _head(shape: tuple[int, ...], rng: np.random.Generator, scale: float, noise: float) -> np.ndarray:
    """A smooth ellipsoidal 'head' with a darker core and Rician-like noise: compresses like MR."""
    grid = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij", sparse=True)
    r = np.sqrt(sum((g / a) ** 2 for g, a in zip(grid, (0.8, 0.9, 0.85))))
    signal = np.where(r < 1, scale * (0.7 + 0.3 * np.cos(6 * r)), 0).astype(np.float32)
    return np.abs(signal + rng.normal(0, noise, shape).astype(np.float32))


def build_cohort(root: Path, cases: int, seed: int = 0) -> list[Path]:
    """Zenodo-layout ISLES 2022 tree; one case is rendered, the others are byte copies of it."""
    rng = np.random.default_rng(seed)
    fov = np.array(DWI_SHAPE) * np.array(DWI_SPACING)
    dwi_affine, flair_affine = _affine(DWI_SHAPE, fov), _affine(FLAIR_SHAPE, fov)
    mask = np.zeros(DWI_SHAPE, np.uint8)
    mask[60:70, 40:52, 30:38] = 1  # ~9 ml at 2 mm
    first = None
    files = []
    for i in range(1, cases + 1):
        sub, ses = f"sub-strokecase{i:04d}", "ses-0001"
        prefix = f"{sub}_{ses}"
        targets = {
            "dwi": root / sub / ses / "dwi" / f"{prefix}_dwi.nii.gz",
            "adc": root / sub / ses / "dwi" / f"{prefix}_adc.nii.gz",
            "flair": root / sub / ses / "anat" / f"{prefix}_FLAIR.nii.gz",
            "msk": root / "derivatives" / sub / ses / f"{prefix}_msk.nii.gz",
        }
        for path in targets.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        if first is None:
            nib.save(nib.Nifti1Image(_head(DWI_SHAPE, rng, 600, 25), dwi_affine), targets["dwi"])
            nib.save(nib.Nifti1Image(_head(DWI_SHAPE, rng, 900, 40), dwi_affine), targets["adc"])
            nib.save(nib.Nifti1Image(_head(FLAIR_SHAPE, rng, 400, 15).astype(np.int16), flair_affine),
                     targets["flair"])
            nib.save(nib.Nifti1Image(mask, dwi_affine), targets["msk"])
            first = targets
        else:
            for key, path in targets.items():
                shutil.copyfile(first[key], path)
        files.extend(targets.values())
    return files


def io_floor(files: list[Path], out: Path) -> float:
    """Seconds to load every file with nibabel (data included) and write it back unchanged."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, path in enumerate(files):
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
        nib.save(nib.Nifti1Image(data, img.affine, img.header), out / f"{i:05d}.nii.gz")
    return time.perf_counter() - start


def convert(src: Path, work: Path, num_processes: int, dataset_id: int) -> float:
    from nnunet_synth.cli import main

    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"), ("nnUNet_results", "res")):
        (work / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(work / sub)
    start = time.perf_counter()
    rc = main(["convert", "isles22", str(src), "--dataset-id", str(dataset_id), "-np", str(num_processes)])
    elapsed = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"conversion failed with exit status {rc}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("-np", "--num-processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    try:
        t0 = time.perf_counter()
        files = build_cohort(tmp / "ISLES-2022", args.cases)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"fake ISLES 2022 cohort: {args.cases} cases, {len(files)} files, {size_mb:.0f} MB compressed "
              f"(built in {time.perf_counter() - t0:.1f} s) in {tmp}", flush=True)
        floor = io_floor(files, tmp / "floor")
        print(f"I/O floor (nibabel read+write, 1 process): {floor:6.1f} s  {args.cases / floor:5.2f} cases/s",
              flush=True)
        for i, n in enumerate(args.num_processes):
            seconds = convert(tmp / "ISLES-2022", tmp / f"convert_np{n}", n, 500 + i)
            print(f"nnsynth convert isles22 -np {n}:            {seconds:6.1f} s  {args.cases / seconds:5.2f} "
                  f"cases/s  ({floor / seconds:.2f}x the floor's speed)", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
