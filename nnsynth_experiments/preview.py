"""`nnsynth preview`: the synthetic cases a trainer would train on, before any GPU time is spent.

The synthesis engine is built exactly as ``TRAINER`` builds it in ``get_tr_and_val_datasets``: the
variant's lesion source and renderer with the ``NNSYNTH_*`` overrides, the fold's training cases (nnU-Net's
split), the fold's generator checkpoints (or the embedded demo defaults) and the trainer's per-fold seed.
OUTPUT gets N cases as NIfTI (images/CASE_000c, labels/CASE, labelmaps/CASE, on the preprocessed grid in
the raw axis order), ``preview.png`` (the cases next to real training cases) and ``provenance.json``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from nnunet_synth import arguments as arg

FILE_ENDING = ".nii.gz"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("preview", help="write the synthetic cases a Synth trainer would train on (NIfTI, "
                                              "a mosaic against real cases, provenance)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", type=arg.DATASET_ID, required=True)
    p.add_argument("-tr", "--trainer", default="nnUNetTrainerSynth", help="trainer class (default nnUNetTrainerSynth)")
    p.add_argument("-f", "--fold", default="0", help="fold whose training cases the engine uses, or 'all' (default 0)")
    p.add_argument("-n", "--cases", type=arg.integer(1, 200), default=8, help="synthetic cases to write (default 8)")
    p.add_argument("-p", "--plans", type=arg.name("--plans"), default="nnUNetPlans")
    p.add_argument("-c", "--configuration", default="3d_fullres")
    p.add_argument("--seed", type=arg.NON_NEGATIVE, default=0, help="seed of the drawn cases (default 0)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("-o", "--output", type=Path, required=True, help="new or empty folder for the preview")
    p.set_defaults(func=run_preview)


def run_preview(args: argparse.Namespace) -> int:
    import numpy as np

    from nnsynth_datasets.export import write_case
    from nnsynth_experiments.design import find_trainer
    from nnsynth_trainers.synth_trainer import fold_seed, nnUNetTrainerSynth
    from nnunet_synth.errors import NNSynthError
    from nnunet_synth.nnunet_io.atomic import staged_folder, write_json_atomic
    from nnunet_synth.nnunet_io.folds import fold_case_ids
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.synthesis.builder import build_engine
    from nnunet_synth.synthesis.mosaic import channel_names, draw_mosaic, real_panels, synthetic_panels

    cls = find_trainer(args.trainer)
    if not issubclass(cls, nnUNetTrainerSynth):
        raise NNSynthError(f"{args.trainer} mixes no synthetic cases into training (it is not an nnUNetTrainerSynth)")
    out = Path(args.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NNSynthError(f"{out} exists and is not an empty folder; give a new folder for the preview")
    settings = cls.synthesis_settings()
    fold = args.fold
    pre = open_preprocessed(args.dataset_id, args.plans, args.configuration)
    train_ids, _ = fold_case_ids(pre, fold, create=False)
    training = TrainingCases.of(pre, sorted(train_ids))
    notes: list[str] = []
    engine = build_engine(training, settings.lesions, settings.renderer, fold=fold, seed=fold_seed(fold),
                          device=args.device, log=notes.append)
    panels, cases = synthetic_panels(engine, args.cases, np.random.default_rng(args.seed))
    voxel_ml = float(np.prod(pre.spacing)) / 1000.0
    provenance = {"trainer": args.trainer, "fold": fold, "settings": asdict(settings), "engine": notes,
                  "dataset": pre.name, "plans": args.plans, "configuration": args.configuration, "seed": args.seed,
                  "cases": {}}
    with staged_folder(out) as stage:
        for i, case in enumerate(cases):
            case_id = f"preview_{i:03d}"
            write_case(case, pre, stage / "images", stage / "labels", stage / "labelmaps", case_id, FILE_ENDING)
            provenance["cases"][case_id] = {**{k: v for k, v in case.provenance.items() if k != "sample_seed"},
                                            "lesion_voxels": int(case.lesion.sum()),
                                            "lesion_ml": round(int(case.lesion.sum()) * voxel_ml, 3)}
        real = real_panels(training, args.cases)
        draw_mosaic([("real training cases", real), (f"{args.trainer} ({settings.lesions} lesions, "
                                                      f"{settings.renderer})", panels)],
                    channel_names(pre, len(real[0][1])), stage / "preview.png",
                    f"{pre.name} fold {fold}: what {args.trainer} trains on")
        write_json_atomic(stage / "provenance.json", provenance)
    print("\n".join(notes))
    print(f"wrote {args.cases} synthetic cases, preview.png and provenance.json to {out} "
          f"(synthetic fraction of each training batch: {settings.fraction})")
    return 0
