#!/usr/bin/env python3
"""Install what the GPU machine lacks from the carried wheels archive, without a package registry.

Runs with the machine's own ``python3`` (the one that holds its CUDA torch) and the standard library only.
When every module of the check already imports and ``nnsynth`` is installed (CI, a developer's venv),
it installs nothing. Otherwise it unpacks ``.whl/device_wheels.tar.xz`` (made by
``scripts/device_prepare.py``), rebuilds each wheel after checking every file against the wheel's
RECORD, and runs ``pip install --no-index --no-deps --target SITE`` on the wheels that are missing here
plus this working tree (so the ``nnsynth`` command and its entry points exist). torch is never touched.
The caller puts SITE first on PYTHONPATH and SITE/bin on PATH.

    python3 scripts/device_install.py --site /tmp/nnsynth_device/site
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import importlib.metadata as md
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# distribution name -> module the check imports (the wheels in the archive carry these distributions)
MODULES = {"nnunetv2": "nnunetv2", "acvl_utils": "acvl_utils", "dynamic_network_architectures":
           "dynamic_network_architectures", "batchgenerators": "batchgenerators", "batchgeneratorsv2":
           "batchgeneratorsv2", "blosc2": "blosc2", "ndindex": "ndindex", "nibabel": "nibabel",
           "SimpleITK": "SimpleITK", "connected-components-3d": "cc3d", "nilearn": "nilearn"}
# what the machine must already have: never installed from here (torch above all)
REQUIRED_HERE = ("torch", "numpy", "scipy", "skimage", "matplotlib", "tqdm", "pandas", "sklearn", "seaborn",
                 "cloudpickle", "httpx", "msgpack", "einops", "threadpoolctl", "requests", "joblib", "setuptools")


class InstallError(RuntimeError):
    """The carried wheels cannot be installed; the message names the file and the problem."""


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def project_installed() -> bool:
    names = {e.name for e in md.entry_points(group="nnsynth.commands")}
    return {"nnunet_synth", "nnsynth_trainers", "nnsynth_experiments"} <= names


def wheel_distribution(wheel_name: str) -> str:
    return wheel_name.split("-")[0].lower().replace("_", "-")


def check_record(folder: Path) -> None:
    """Every file of the unpacked wheel has the size and sha256 its RECORD lists (the archive lost nothing)."""
    records = list(folder.glob("*.dist-info/RECORD"))
    if len(records) != 1:
        raise InstallError(f"{folder.name}: expected one *.dist-info/RECORD, found {len(records)}")
    with open(records[0], newline="") as f:
        for row in csv.reader(f):
            if not row or not row[1]:
                continue
            path, digest = folder / row[0], row[1]
            algo, _, expected = digest.partition("=")
            if not path.is_file():
                raise InstallError(f"{folder.name}: {row[0]} listed in RECORD is missing from the archive")
            actual = base64.urlsafe_b64encode(hashlib.new(algo, path.read_bytes()).digest()).rstrip(b"=").decode()
            if actual != expected:
                raise InstallError(f"{folder.name}: {row[0]} does not match its RECORD hash")


def rebuild_wheels(archive: Path, work: Path, wanted: set[str]) -> list[Path]:
    """Unpack the archive and zip the wanted wheels again under work/wheels (same file names)."""
    src, out = work / "wheel_src", work / "wheels"
    for folder in (src, out):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:xz") as tar:
            members = [m for m in tar.getmembers() if wheel_distribution(m.name.split("/")[0]) in wanted]
            tar.extractall(src, members=members, filter="data") if sys.version_info >= (3, 12) else \
                tar.extractall(src, members=members)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InstallError(f"{archive}: cannot unpack ({exc}); rebuild it with scripts/device_prepare.py") from exc
    wheels = []
    for folder in sorted(src.iterdir()):
        check_record(folder)
        wheel = out / folder.name
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as z:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    z.write(path, path.relative_to(folder).as_posix())
        wheels.append(wheel)
    shutil.rmtree(src)
    return wheels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", type=Path, required=True, help="pip --target folder (put it on PYTHONPATH)")
    p.add_argument("--wheels", type=Path, default=REPO / ".whl", help="folder with device_wheels.tar.xz")
    p.add_argument("--report", type=Path, default=None, help="write what was installed here (JSON)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    absent_here = [m for m in REQUIRED_HERE if not importable(m)]
    if absent_here:
        raise InstallError(f"{sys.executable} lacks {', '.join(absent_here)}, which the check expects the machine "
                           "to have (docs/device/README.md); carry them as wheels in .whl")
    missing = sorted(d for d, m in MODULES.items() if not importable(m))
    need_project = not project_installed()
    report = {"python": sys.executable, "missing_before": missing, "project_installed_before": not need_project,
              "site": str(args.site)}
    if missing or need_project:
        wheels: list[Path] = []
        if missing:
            manifest_file = args.wheels / "device_wheels.json"
            if not manifest_file.is_file():
                raise InstallError(f"{manifest_file} not found: run `bash scripts/device_prepare.sh` here and "
                                   "carry .whl (missing: " + ", ".join(missing) + ")")
            manifest = json.loads(manifest_file.read_text())
            py = f"{sys.version_info.major}.{sys.version_info.minor}"
            if manifest["python_version"] != py:
                raise InstallError(f"{manifest_file}: wheels are for Python {manifest['python_version']}, this is "
                                   f"Python {py}; rebuild with scripts/device_prepare.py --python-version {py}")
            wanted = {d.lower().replace("_", "-") for d in missing}
            wheels = rebuild_wheels(args.wheels / manifest["archive"], args.site.parent, wanted)
            found = {wheel_distribution(w.name) for w in wheels}
            if wanted - found:
                raise InstallError(f"{args.wheels / manifest['archive']} holds no wheel of "
                                   f"{', '.join(sorted(wanted - found))}")
        targets = [str(w) for w in wheels] + ([str(REPO)] if need_project else [])
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                               "--no-cache-dir", "--no-build-isolation", "--upgrade", "--target", str(args.site),
                               *targets], capture_output=True, text=True)
        if proc.returncode != 0:
            raise InstallError(f"pip install --target {args.site} failed:\n{proc.stdout[-3000:]}\n"
                               f"{proc.stderr[-3000:]}")
        report["installed"] = [Path(w).name for w in wheels] + (["nnunet-synth (this working tree)"] if need_project
                                                                  else [])
    else:
        report["installed"] = []
    report["seconds"] = round(time.perf_counter() - start, 1)
    done = "installed " + ", ".join(report["installed"]) if report["installed"] else "nothing to install"
    print(f"device_install: {done} ({report['seconds']} s)", flush=True)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InstallError as exc:
        print(f"device_install: error: {exc}", file=sys.stderr)
        sys.exit(2)
