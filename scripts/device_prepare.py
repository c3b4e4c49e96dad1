#!/usr/bin/env python
"""Build the wheels that `scripts/device_check.sh` carries to the GPU machine, and report what travels.

The GPU machine has no package registry and lacks nnU-Net and its image/IO stack; a call may carry at
most 64 MiB, the git working tree included. SimpleITK alone is a 53 MB wheel (nnU-Net imports it at
module level in the trainer, the predictor and the evaluation), so the wheels travel as ONE xz archive
of their unpacked contents (the zip wheels compress 2x further that way; SimpleITK 53 -> 28 MB), which
``scripts/device_install.py`` turns back into the same wheels there (each file checked against the
wheel's RECORD) and installs with ``pip install --no-index --no-deps --target``.

    python scripts/device_prepare.py                 # .whl/device_wheels.tar.xz + .whl/device_wheels.json
    python scripts/device_prepare.py --python-version 3.11 --out build/device/rehearsal_whl   # rehearsal

Versions are the ones installed in this environment (the pinned CPU set CI uses); the machine keeps its
own torch and everything else it already has (list in docs/device/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAVEL_LIMIT = 64 * 2**20  # bytes: working tree + carried paths, per device call
ARCHIVE = "device_wheels.tar.xz"
MANIFEST = "device_wheels.json"

# What the GPU machine lacks, checked against its package list (docs/device/README.md): nnU-Net and the
# packages it imports on the training / prediction / evaluation path, plus nilearn, whose MNI template
# `nnsynth demo-cohort` builds the dataset from. Their own declared needs that the machine has (pandas,
# scikit-learn, seaborn, httpx, msgpack, ...) or that nothing imports (future, unittest2) stay behind.
SHIP = ("nnunetv2", "acvl_utils", "dynamic_network_architectures", "batchgenerators", "batchgeneratorsv2",
        "blosc2", "ndindex", "nibabel", "SimpleITK", "connected-components-3d", "nilearn")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def pins() -> dict[str, str]:
    """name -> version installed here (the versions CI tests)."""
    out = {}
    for name in SHIP:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            raise SystemExit(f"device_prepare: {name} is not installed in {sys.prefix}; run `make test-quick` "
                             "(or pip install -e '.[test]') first") from None
    return out


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def fetch_wheel(name: str, version: str, python_version: str, cache: Path) -> Path:
    """The wheel of name==version for the machine's Python (built here from the sdist when PyPI has none)."""
    key = name.lower().replace("-", "_")
    found = [p for p in cache.glob("*.whl") if p.name.lower().startswith(f"{key}-{version}-")]
    if found:
        return found[0]
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    try:
        _pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
             "--implementation", "cp", *platform_args, "-d", str(cache), f"{name}=={version}")
    except RuntimeError:
        sdists = cache / "sdist"
        _pip("download", "-q", "--no-deps", "--no-binary=:all:", "-d", str(sdists), f"{name}=={version}")
        sdist = next(p for p in sdists.iterdir() if p.name.lower().replace("-", "_").startswith(f"{key}-{version}"))
        _pip("wheel", "-q", "--no-deps", "-w", str(cache), str(sdist))
    found = [p for p in cache.glob("*.whl") if p.name.lower().startswith(f"{key}-{version}-")]
    if not found:
        raise RuntimeError(f"no wheel of {name}=={version} in {cache} after download")
    return found[0]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pack(wheels: list[Path], archive: Path, staging: Path, level: int = 9) -> None:
    """One xz tar of the wheels' unpacked contents, one folder per wheel (named as the wheel file)."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(staging / wheel.name)
    tmp = archive.with_name(archive.name + ".part")
    if shutil.which("xz") and shutil.which("tar"):  # multi-threaded xz: minutes instead of ten
        with open(tmp, "wb") as out:
            tar = subprocess.Popen(["tar", "-C", str(staging), "--sort=name", "--owner=0", "--group=0",
                                    "-cf", "-", *sorted(p.name for p in staging.iterdir())], stdout=subprocess.PIPE)
            xz = subprocess.run(["xz", f"-{level}", f"-T{os.cpu_count() or 1}", "-c"], stdin=tar.stdout, stdout=out)
            tar.stdout.close()
            if tar.wait() != 0 or xz.returncode != 0:
                raise RuntimeError(f"tar | xz failed while writing {tmp}")
    else:
        with tarfile.open(tmp, "w:xz", preset=level) as tar:
            for folder in sorted(staging.iterdir()):
                tar.add(folder, arcname=folder.name)
    tmp.replace(archive)
    shutil.rmtree(staging)


def working_tree_bytes() -> int:
    """What travels besides the carried paths: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.split(b"\0")
    return sum((REPO / p.decode()).stat().st_size for p in listed if p and (REPO / p.decode()).is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / ".whl", help="folder carried to the device (default .whl)")
    p.add_argument("--python-version", default="3.12", help="the device's Python (default 3.12)")
    p.add_argument("--cache", type=Path, default=None, help="download cache (default build/device/wheels-PY)")
    p.add_argument("--xz-level", type=int, default=9, choices=range(10), help="9: smallest (default); 1: fast")
    args = p.parse_args(argv)
    cache = args.cache or REPO / "build" / "device" / f"wheels-{args.python_version}"
    cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    versions = pins()
    wheels = [fetch_wheel(n, v, args.python_version, cache) for n, v in versions.items()]
    archive = args.out / ARCHIVE
    print(f"packing {len(wheels)} wheels ({sum(w.stat().st_size for w in wheels) / 1e6:.1f} MB as wheels) "
          f"into {archive} ...", flush=True)
    pack(wheels, archive, cache / "staging", args.xz_level)
    manifest = {"python_version": args.python_version, "archive": ARCHIVE, "packages": versions,
                "wheels": [{"file": w.name, "bytes": w.stat().st_size, "sha256": sha256(w)} for w in wheels],
                "archive_bytes": archive.stat().st_size}
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for stale in args.out.iterdir():
        if stale.name not in (ARCHIVE, MANIFEST):
            print(f"note: {stale} is carried too ({stale.stat().st_size / 1e6:.1f} MB); remove it if unused")
    if args.out.resolve() != (REPO / ".whl").resolve():
        print(f"wheels archive: {archive.stat().st_size / 2**20:.1f} MiB in {args.out} (not the carried .whl: "
              "no transfer limit applies)")
        return 0
    tree = working_tree_bytes()
    carried = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    total = tree + carried
    print(f"wheels archive: {archive.stat().st_size / 2**20:.1f} MiB; working tree: {tree / 2**20:.1f} MiB; "
          f"travels per call: {total / 2**20:.1f} MiB of {TRAVEL_LIMIT / 2**20:.0f} MiB")
    if total > TRAVEL_LIMIT:
        print("device_prepare: error: over the device's transfer limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
