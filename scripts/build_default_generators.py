"""Train the embedded default generators on the demo cohort with the project's own commands.

    python scripts/build_default_generators.py --work /tmp/defaults --maskgan-steps 600 --translator-steps 300

demo cohort (the `nnsynth demo` set-up) -> nnUNetv2_plan_and_preprocess -> fold 0 = the cohort's
training subjects minus 5 validation subjects (the test subjects are never read) -> nnsynth
train-maskgan, nnsynth train-translator --arch pix2pix -> maskgan-report, translator-report ->
generator weights only (no critic, no optimizer) copied into nnunet_synth/generators/defaults/ with a
model card holding the data, the commands and the measured figures.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from nnsynth_experiments.pipeline import Pipeline, nnunet_environment
from nnunet_synth.generators.checkpoint import load_checkpoint, save_checkpoint
from nnunet_synth.generators.defaults import DEFAULTS_DIR, FILES, model_card
from nnunet_synth.nnunet_io.atomic import write_json_atomic

DATASET_ID = 990


def strip(src: Path, dst: Path) -> int:
    """Keep what sampling/rendering needs: the generator's weights, config, fingerprint and extras."""
    ckpt = load_checkpoint(src)
    ckpt.state_dicts = {"generator": ckpt.state_dicts["generator"]}
    ckpt.optimizer_states = {}
    ckpt.extra = {k: v for k, v in ckpt.extra.items() if k not in ("rng_states", "rng_state", "loss_history")}
    save_checkpoint(dst, ckpt)
    return dst.stat().st_size


def successful_commands(log: Path) -> list[tuple[str, float]]:
    """(command, seconds) of every step of this and earlier builds that finished, read from the pipeline log."""
    done, last = [], None
    for line in log.read_text().splitlines():
        if line.startswith("$ "):  # logged twice: as typed and with the console script's full path
            program, _, rest = line[2:].partition(" ")
            last = f"{Path(program).name} {rest}"
        elif line.startswith("=== ") and ": done in " in line and last is not None:
            done.append((last, float(line.rsplit("done in ", 1)[1].split()[0])))
            last = None
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for the nnU-Net folders")
    ap.add_argument("--subjects", type=int, default=40)
    ap.add_argument("--spacing", type=float, default=3.0)
    ap.add_argument("--maskgan-steps", type=int, default=600)
    ap.add_argument("--translator-steps", type=int, default=300)
    ap.add_argument("--translator-filters", type=int, default=16)
    ap.add_argument("--translator-max-filters", type=int, default=128)
    ap.add_argument("--crop", default="48")
    ap.add_argument("--disc-filters", default="16,32,64,128", help="PatchGAN filters (4 layers fit a 48 crop)")
    ap.add_argument("--upsampling", choices=("transpose", "trilinear"), default="trilinear",
                    help="pix2pix decoder (default trilinear + conv: no checkerboard, see the model card)")
    ap.add_argument("--kinds", nargs="+", choices=tuple(FILES), default=list(FILES),
                    help="generators to rebuild (the others' weights and cards stay as they are)")
    args = ap.parse_args()
    work = args.work.resolve()
    env = nnunet_environment(work)
    pipe = Pipeline(env=env, log_file=work / "build.log")
    raw_root, pre_root = Path(env["nnUNet_raw"]), Path(env["nnUNet_preprocessed"])
    commands = []

    def run(label: str, cmd: list, extra: dict | None = None) -> None:
        commands.append(" ".join(map(str, cmd)))
        pipe.run(label, cmd, extra)

    if not any(raw_root.glob(f"Dataset{DATASET_ID}_*")):
        run("demo cohort", ["nnsynth", "demo-cohort", "--dataset-id", DATASET_ID, "--subjects", args.subjects,
                            "--spacing", args.spacing, "-np", 2])
    raw = next(raw_root.glob(f"Dataset{DATASET_ID}_*"))
    pre = pre_root / raw.name
    if not (pre / "nnUNetPlans.json").is_file():
        run("plan and preprocess", ["nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", "3d_fullres", "-np", 2],
            {"nnUNet_n_proc_DA": "1"})
    train_ids = sorted(p.name[:-7] for p in (raw / "labelsTr").glob("*.nii.gz"))
    split = {"train": train_ids[:-5], "val": train_ids[-5:]}
    write_json_atomic(pre / "splits_final.json", [split])

    gen = Path(env["nnUNet_results"]) / raw.name / "nnsynth"
    timings = {}
    for kind, cmd, steps in (
            ("maskgan", ["nnsynth", "train-maskgan"], args.maskgan_steps),
            ("pix2pix", ["nnsynth", "train-translator", "--arch", "pix2pix", "--filters", args.translator_filters,
                         "--max-filters", args.translator_max_filters, "--crop", args.crop, "--disc-filters",
                         args.disc_filters, "--upsampling", args.upsampling], args.translator_steps)):
        if kind not in args.kinds:
            continue
        final, latest = gen / f"{kind}_fold0.pt", gen / f"{kind}_fold0_latest.pt"
        if final.is_file() and load_checkpoint(final).step >= steps:
            continue
        resume = ["--continue"] if latest.is_file() else []  # more steps: resume exactly where it stopped
        t0 = time.perf_counter()
        run(f"train {kind}", [*cmd, "-d", DATASET_ID, "--fold", 0, "--device", "cpu", "--steps", steps,
                              "--save-every", steps, "--no-progress", *resume])
        timings[kind] = round(time.perf_counter() - t0)
    reports = work / "reports"
    if "maskgan" in args.kinds:
        run("mask GAN report", ["nnsynth", "maskgan-report", "-d", DATASET_ID, "--fold", 0, "--n", 200,
                                "-o", reports / "maskgan"])
    if "pix2pix" in args.kinds:
        run("translator report", ["nnsynth", "translator-report", "-d", DATASET_ID, "--fold", 0, "--checkpoint",
                                  gen / "pix2pix_fold0.pt", "-o", reports / "pix2pix"])
    sizes = {kind: strip(gen / f"{kind}_fold0.pt", DEFAULTS_DIR / FILES[kind]) for kind in args.kinds}
    history = successful_commands(work / "build.log")
    setup = [c for c, _ in history if c.startswith(("nnsynth demo-cohort", "nnUNetv2_plan_and_preprocess"))][:2]
    for kind in args.kinds:
        trained = [(c, t) for c, t in history
                   if c.startswith("nnsynth train-maskgan" if kind == "maskgan" else "nnsynth train-translator")]
        timings[kind] = round(sum(t for _, t in trained))
        report = f"nnsynth {'maskgan' if kind == 'maskgan' else 'translator'}-report"
        card_commands = setup + [c for c, _ in trained] + [c for c, _ in history if c.startswith(report)][-1:]
        ckpt = load_checkpoint(DEFAULTS_DIR / FILES[kind])
        n_params = sum(t.numel() for t in ckpt.state_dicts["generator"].values() if isinstance(t, torch.Tensor))
        report_md = (reports / kind / "report.md").read_text()
        model_card(kind).write_text(
            f"# Embedded default {kind} generator (demo cohort)\n\n"
            f"- **File**: `{FILES[kind]}` ({sizes[kind] / 1e6:.1f} MB, {n_params / 1e6:.2f} M parameters, "
            f"generator weights only); {ckpt.step} training steps"
            + f", {timings[kind]} s of training wall time on a 2-core CPU shared with other jobs.\n"
            f"- **Data**: `nnsynth demo-cohort --dataset-id {DATASET_ID} --subjects {args.subjects} --spacing "
            f"{args.spacing:g}` (seed 0), preprocessed by nnU-Net 2.8.1 (3d_fullres, spacing "
            f"{ckpt.dataset_fingerprint().spacing} mm, z-score per channel). Trained on the {len(split['train'])} "
            f"training subjects of fold 0; the figures below come from {len(split['val'])} held-out training "
            f"subjects; the cohort's test subjects were never read.\n"
            "- **Use**: served automatically to a demo cohort of the same set-up when the dataset has no "
            "checkpoint of its own (`nnUNetTrainerSynthMaskGAN`, `nnUNetTrainerSynthPix2pix`, `nnsynth export`). "
            "It has seen most of the demo cohort's training subjects, so it must not be used for a data-scarce "
            "comparison on that cohort (`nnsynth experiment --generators learned` trains per subsample).\n"
            "- **Not for**: real MRI. Any other dataset must train its own generator.\n\n"
            f"## Commands (run by `scripts/build_default_generators.py`)\n\n```\n" + "\n".join(card_commands)
            + "\n```\n\n## Measured figures\n\n" + report_md)
        print(f"{kind}: {DEFAULTS_DIR / FILES[kind]} ({sizes[kind] / 1e6:.1f} MB)")
    print(f"total {sum(sizes.values()) / 1e6:.1f} MB; env {os.environ.get('nnUNet_results', '')}")


if __name__ == "__main__":
    main()
