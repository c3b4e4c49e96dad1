"""`nnsynth lesion-realism`: do synthetic lesions look like real ones where a network would notice?

For a fold, the real lesions of its held-out (validation) cases are measured against the lesions each
named Synth trainer would generate from the fold's training cases, per channel and in nnU-Net's normalized
space:

- **contrast**: median intensity of the lesion core minus the median of the parenchyma 3-6 voxels around it;
- **edge gradient**: mean gradient magnitude on the two voxel layers either side of the lesion's edge (a
  seam or a too-sharp edge shows here first: a network can learn to find seams instead of lesions).

The distance between the real and the synthetic distribution is the two-sample Kolmogorov-Smirnov statistic
(``scipy.stats.ks_2samp``; 0 = same distribution, 1 = disjoint). OUTPUT gets ``lesion_realism.json``,
``lesion_realism.md`` and ``lesion_realism.png``: real held-out lesions beside generated ones, each column
once with the lesion outlined and once bare.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nnunet_synth import arguments as arg

FEATURES = ("contrast", "edge_gradient")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lesion-realism", help="KS distance of lesion contrast and edge gradient, synthetic "
                                                     "against real held-out lesions, and a seam mosaic",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", type=arg.DATASET_ID, required=True)
    p.add_argument("-tr", "--trainers", nargs="+", default=["nnUNetTrainerSynthInpaint", "nnUNetTrainerSynth"],
                   help="Synth trainers whose lesions are measured (default: nnUNetTrainerSynthInpaint "
                        "nnUNetTrainerSynth)")
    p.add_argument("-f", "--fold", default="0", help="fold: its training cases generate, its validation cases are "
                                                     "the real reference (default 0)")
    p.add_argument("-n", "--cases", type=arg.integer(1, 1000), default=24, help="synthetic cases per trainer")
    p.add_argument("-p", "--plans", type=arg.name("--plans"), default="nnUNetPlans")
    p.add_argument("-c", "--configuration", default="3d_fullres")
    p.add_argument("--columns", type=arg.integer(1, 16), default=4, help="cases per row of the mosaic")
    p.add_argument("--seed", type=arg.NON_NEGATIVE, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the report (made if missing)")
    p.set_defaults(func=run_realism)


def lesion_features(image: np.ndarray, lesion: np.ndarray, measured: np.ndarray, parenchyma: np.ndarray,
                    min_voxels: int = 4, sampling: tuple[float, ...] | None = None) -> list[dict[str, list[float]]]:
    """Contrast and edge gradient of each component of ``measured`` (all of ``lesion`` is kept out of the tissue)."""
    import cc3d

    from nnunet_synth.renderers.lesion_contrast import measure_lesion

    out = []
    labels = cc3d.connected_components(measured.astype(np.uint8), connectivity=26)
    for label_id in range(1, int(labels.max()) + 1):
        component = labels == label_id
        if component.sum() < min_voxels:
            continue
        m = measure_lesion(np.asarray(image, np.float32), component, lesion | component, parenchyma, sampling)
        if m is not None:
            out.append({"contrast": m.core.tolist(), "edge_gradient": m.edge_gradient.tolist(), "voxels": m.voxels})
    return out


def compare(real: list[dict], synthetic: list[dict], channels: list[str]) -> dict:
    """Per feature and channel: real and synthetic medians, KS statistic and its p-value."""
    from scipy.stats import ks_2samp

    out = {}
    for feature in FEATURES:
        for c, channel in enumerate(channels):
            r = np.array([x[feature][c] for x in real])
            s = np.array([x[feature][c] for x in synthetic])
            if len(r) == 0 or len(s) == 0:
                out[f"{feature} {channel}"] = {"real_median": None, "synthetic_median": None, "ks": None, "p": None}
                continue
            test = ks_2samp(r, s)
            out[f"{feature} {channel}"] = {"real_median": float(np.median(r)), "synthetic_median": float(np.median(s)),
                                           "ks": float(test.statistic), "p": float(test.pvalue)}
    return out


def run_realism(args: argparse.Namespace) -> int:
    from nnsynth_experiments.design import find_trainer
    from nnsynth_trainers.synth_trainer import fold_seed, nnUNetTrainerSynth
    from nnunet_synth.errors import NNSynthError
    from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic
    from nnunet_synth.nnunet_io.folds import fold_case_ids
    from nnunet_synth.nnunet_io.preprocessed import open_preprocessed
    from nnunet_synth.nnunet_io.training_cases import TrainingCases
    from nnunet_synth.renderers.lesion_contrast import voxel_sampling
    from nnunet_synth.synthesis.anatomy import AnatomyClasses
    from nnunet_synth.synthesis.builder import build_engine
    from nnunet_synth.synthesis.mosaic import channel_names, draw_mosaic

    classes_ = [find_trainer(t) for t in args.trainers]
    for name, cls in zip(args.trainers, classes_):
        if not issubclass(cls, nnUNetTrainerSynth):
            raise NNSynthError(f"{name} generates no synthetic cases (it is not an nnUNetTrainerSynth)")
    pre = open_preprocessed(args.dataset_id, args.plans, args.configuration)
    train_ids, val_ids = fold_case_ids(pre, args.fold, create=False)
    if not val_ids:
        raise NNSynthError(f"fold {args.fold} has no validation cases to take real lesions from")
    anatomy = AnatomyClasses.from_dataset_json(pre.dataset_json)
    sampling = voxel_sampling(pre.spacing)  # distances and gradients per finest voxel, as the painter's
    foreground = 1
    held_out = TrainingCases.of(pre, sorted(val_ids))
    real, real_panels = [], []
    for case in held_out.case_ids:
        image, seg = held_out.load(case)
        lesion = seg == foreground
        parenchyma = np.isin(held_out.labelmaps[case], anatomy.parenchyma)
        real += lesion_features(image, lesion, lesion, parenchyma, sampling=sampling)
        if lesion.any() and len(real_panels) < args.columns:
            real_panels.append((f"real {case}", image, lesion[None].astype(np.int8)))
    if not real:
        raise NNSynthError(f"none of fold {args.fold}'s validation cases has a lesion to compare with")
    channels = channel_names(pre, real_panels[0][1].shape[0])
    training = TrainingCases.of(pre, sorted(train_ids))
    report = {"dataset": pre.name, "fold": args.fold, "plans": args.plans, "real_lesions": len(real),
              "real_cases": len(val_ids), "trainers": {}}
    rows = [("real held-out lesions", real_panels), ("real held-out lesions, bare", real_panels)]
    for name, cls in zip(args.trainers, classes_):
        rng = np.random.default_rng(args.seed)  # each trainer's cases do not depend on the order of -tr
        settings = cls.synthesis_settings()
        notes: list[str] = []
        engine = build_engine(training, settings.lesions, settings.renderer, fold=args.fold,
                              seed=fold_seed(args.fold), device=args.device, log=notes.append)
        synthetic, panels = [], []
        for _ in range(args.cases):
            case = engine.make_case(rng)
            parenchyma = np.isin(case.labelmap, anatomy.parenchyma)
            synthetic += lesion_features(case.image, case.lesion, case.new_lesion, parenchyma, sampling=sampling)
            if case.new_lesion.any() and len(panels) < args.columns:
                panels.append((f"{case.provenance['anatomy']} + {case.provenance['lesion_source']}", case.image,
                               case.new_lesion[None].astype(np.int8)))
        report["trainers"][name] = {"lesions": len(synthetic), "cases": args.cases, "engine": notes,
                                    "lesion_source": settings.lesions, "renderer": settings.renderer,
                                    "features": compare(real, synthetic, channels)}
        rows += [(f"{name}", panels), (f"{name}, bare", panels)]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "lesion_realism.json", report)
    draw_mosaic(rows, channels, out / "lesion_realism.png",
                f"{pre.name} fold {args.fold}: real held-out lesions and generated ones (generated: the new lesion "
                "outlined)", outlines=[i % 2 == 0 for i in range(len(rows))])
    write_text_atomic(out / "lesion_realism.md", realism_markdown(report))
    print(realism_markdown(report))
    print(f"wrote {out / 'lesion_realism.json'}, .md and .png")
    return 0


def realism_markdown(report: dict) -> str:
    head = (f"# Lesion realism, {report['dataset']} fold {report['fold']}\n\n{report['real_lesions']} real lesions "
            f"of {report['real_cases']} held-out cases against the lesions each trainer generates from the fold's "
            "training cases. KS: two-sample Kolmogorov-Smirnov statistic (0 = same distribution).\n\n")
    features = next(iter(report["trainers"].values()))["features"]
    lines = ["| trainer | lesions | " + " | ".join(f"{k}: KS (median synth / real)" for k in features) + " |",
             "|---|---|" + "---|" * len(features)]
    for name, t in report["trainers"].items():
        cells = []
        for k in features:
            f = t["features"][k]
            cells.append("n/a" if f["ks"] is None else
                         f"{f['ks']:.2f} ({f['synthetic_median']:+.2f} / {f['real_median']:+.2f})")
        lines.append(f"| {name} | {t['lesions']} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n\n![real and generated lesions](lesion_realism.png)\n"
