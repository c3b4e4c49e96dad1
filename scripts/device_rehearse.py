#!/usr/bin/env python
"""Rehearse the GPU machine's install path here: a Python that has only what that machine has.

The GPU machine lacks nnU-Net and its IO stack (docs/device/README.md lists what it has). This builds
an isolated venv whose site-packages see only those packages (symbolic links into this environment's
site-packages, through a .pth file), a wheels archive for this Python (``device_prepare.py
--python-version 3.11``: the binary wheels differ, the list is the same), and runs
``scripts/device_check.sh --device cpu --tiny`` with that Python: ``device_install.py`` must then rebuild
and install every missing wheel and this working tree, and every step must run from the installed copy.

    python scripts/device_rehearse.py            # build/device/rehearsal/{base,venv,whl,work,out}
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The GPU machine's Python packages (device tool's KINDS.md, as read on 2026-11-17) that the check's path
# uses or that their imports pull in; the rest of its list plays no part here.
DEVICE_HAS = ("torch", "numpy", "scipy", "scikit-image", "matplotlib", "tqdm", "pandas", "scikit-learn", "seaborn",
              "cloudpickle", "joblib", "narwhals", "threadpoolctl", "httpx", "httpcore", "h11", "anyio", "idna",
              "certifi", "msgpack", "rich", "markdown-it-py", "mdurl", "pygments", "einops", "requests", "urllib3",
              "charset-normalizer", "pyyaml", "six", "setuptools", "wheel", "packaging", "pillow", "imageio",
              "tifffile", "lazy-loader", "networkx", "sympy", "mpmath", "jinja2", "markupsafe", "filelock",
              "fsspec", "typing-extensions", "python-dateutil", "pyparsing", "kiwisolver", "fonttools", "cycler",
              "contourpy", "triton", "timm", "safetensors", "huggingface-hub", "torchvision", "tzdata")


def requirements(dist: md.Distribution) -> list[str]:
    names = []
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        names.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
    return names


def link_base(base: Path) -> list[str]:
    """Symbolic links to the DEVICE_HAS distributions (and what they need) of this environment."""
    site = Path(sysconfig.get_paths()["purelib"])
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    todo, seen = list(DEVICE_HAS), set()
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # the GPU machine has it, this environment does not: nothing here needs it
        todo += requirements(dist)
        for top in {str(f).split("/")[0] for f in dist.files or []}:
            src = site / top
            if top not in ("..", "bin") and src.exists() and not (base / top).exists():
                (base / top).symlink_to(src)
    return sorted(seen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=REPO / "build" / "device" / "rehearsal")
    args = p.parse_args(argv)
    root = args.root.resolve()
    linked = link_base(root / "base")
    venv = root / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)  # no --system-site-packages
    py = venv / "bin" / "python"
    # Python 3.11's venv brings an old setuptools of its own (3.12's brings none); the machine's is the base's
    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], check=True)
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "_device_base.pth").write_text(str(root / "base") + "\n")
    print(f"rehearsal Python {py}: sees {len(linked)} distributions of the GPU machine's list", flush=True)
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([sys.executable, str(REPO / "scripts" / "device_prepare.py"), "--python-version", ver,
                    "--out", str(root / "whl"), "--xz-level", "1"], check=True)
    for sub in ("work", "out"):
        shutil.rmtree(root / sub, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update({"NNSYNTH_PYTHON": str(py), "NNSYNTH_WHEELS": str(root / "whl"),
                "NNSYNTH_DEVICE_WORK": str(root / "work"), "OUT": str(root / "out"), "NNSYNTH_CHECK_SECONDS": "1200",
                "PATH": os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                        if not p.startswith(sys.prefix))})
    proc = subprocess.run(["bash", str(REPO / "scripts" / "device_check.sh"), "--device", "cpu", "--tiny"],
                          cwd=REPO, env=env)
    print(f"rehearsal: device_check.sh exit {proc.returncode}; report in {root / 'out'}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
