"""The command line, trainer registration and the package dependency rule."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_synth.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"trainer-path", "shrink-plans", "demo-cohort"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: nnsynth " + name in capsys.readouterr().out


def test_trainer_path_holds_only_reexports(capsys):
    assert main(["trainer-path"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    modules = list(folder.glob("*.py"))
    assert modules, folder
    for module in modules:
        tree = ast.parse(module.read_text())
        assert all(isinstance(node, ast.ImportFrom) for node in tree.body), f"{module} defines code"
    import nnsynth_trainers.budget as budget
    import nnsynth_trainers.synth_trainer as synth

    exported = {a.name for m in modules for node in ast.parse(m.read_text()).body for a in node.names}
    defined = {name for mod in (budget, synth) for name, obj in vars(mod).items()
               if isinstance(obj, type) and name.startswith("nnUNetTrainer") and obj.__module__ == mod.__name__}
    assert defined <= exported, f"nnUNetv2_train cannot find {sorted(defined - exported)}: re-export them"


def test_nnunet_finds_the_trainer_through_nnunet_extTrainer(capsys, monkeypatch):
    main(["trainer-path"])
    monkeypatch.setenv("nnUNet_extTrainer", capsys.readouterr().out.strip())
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
            "c = f('nnUNetTrainerSynth'); print(c.__module__, c.synth_fraction)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("nnsynth_trainers.synth_trainer 0.5")


def _imported_top_level_packages(package: Path) -> set[str]:
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


SIBLINGS = {"nnsynth_trainers", "nnsynth_gan", "nnsynth_datasets", "nnsynth_experiments"}


def test_nnunet_synth_never_imports_its_siblings():
    assert not (_imported_top_level_packages(ROOT / "nnunet_synth") & SIBLINGS)
    assert SIBLINGS == {p.name for p in ROOT.iterdir() if p.name.startswith("nnsynth_") and p.is_dir()}


# docs/ARCHITECTURE.md: which core packages each core package may import (data-path order)
CORE_ALLOWED = {
    "errors": set(), "settings": {"errors"}, "models": set(),
    "nnunet_io": {"errors"},
    "generators": {"errors", "nnunet_io"},
    "lesions": {"errors", "nnunet_io", "generators", "models"},
    "renderers": {"errors", "nnunet_io", "generators", "models"},
    "synthesis": {"errors", "nnunet_io", "generators", "lesions", "renderers", "settings"},
    "feeding": {"errors", "synthesis"},
    "evaluation": {"errors", "nnunet_io"},
    "arguments": {"errors", "nnunet_io"}, "cli": {"__version__", "errors"}, "commands": {"cli"},
}


def test_core_packages_import_only_what_lies_before_them_on_the_data_path():
    root = ROOT / "nnunet_synth"
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).parts
        pkg = rel[0] if len(rel) > 1 else rel[0][:-3]
        if pkg == "__init__" or (len(rel) > 1 and rel[-1].endswith("cli.py")):
            continue  # a package's command-line adapter (`cli.py`, `*_cli.py`) sits on top of the whole core
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] == "nnunet_synth":  # `from nnunet_synth import x` imports the module x
                    names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
                    found.setdefault(pkg, set()).update(names)
    assert set(found) <= set(CORE_ALLOWED), f"new core package(s) {set(found) - set(CORE_ALLOWED)}: add them here"
    for pkg, imported in found.items():
        assert imported - {pkg} <= CORE_ALLOWED[pkg], f"nnunet_synth.{pkg} imports {imported - {pkg}}"


def test_shrink_plans_writes_a_consistent_small_copy(nnunet_env, capsys):
    pre = nnunet_env["nnUNet_preprocessed"] / "Dataset901_X"
    pre.mkdir()
    arch = {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320], "kernel_sizes": [[3, 3, 3]] * 6,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5, "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5}
    plans = {"plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "patch_size": [112, 128, 96], "batch_size": 2,
        "architecture": {"arch_kwargs": arch}}}}
    (pre / "nnUNetPlans.json").write_text(json.dumps(plans))
    assert main(["shrink-plans", "-d", "901", "--plans-name", "small", "--stages", "3", "--max-patch", "30",
                 "--base-features", "4"]) == 0
    new = json.loads((pre / "small.json").read_text())
    cfg = new["configurations"]["3d_fullres"]
    assert new["plans_name"] == "small" and cfg["data_identifier"] == "nnUNetPlans_3d_fullres"
    assert cfg["patch_size"] == [28, 28, 28]
    a = cfg["architecture"]["arch_kwargs"]
    assert a["features_per_stage"] == [4, 8, 16] and len(a["strides"]) == len(a["kernel_sizes"]) == 3
    assert json.loads((pre / "nnUNetPlans.json").read_text()) == plans  # source untouched
    assert main(["shrink-plans", "-d", "901", "--plans-name", "bad", "--stages", "3", "--patch-size",
                 "30", "30", "30"]) == 2
    assert "divisible by 4" in capsys.readouterr().err
    assert not (pre / "bad.json").exists()
