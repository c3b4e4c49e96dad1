"""`nnsynth experiment`: the paper's data-scarce experiment on an nnU-Net dataset.

For every number of real cases and seed, a subsample of the training cases becomes one extra fold
of splits_final.json; every arm (real only, real + synthetic, synthetic only) is trained with
nnUNetv2_train on that fold, predicts the fixed held-out test set with nnUNetv2_predict and is scored
with nnUNetv2_evaluate_folder and `nnsynth evaluate`. With ``--generators learned`` the mask GAN and
the pix2pix translator are trained on the fold's subsample first. Finished runs (``result.json``)
are skipped, a half-trained nnU-Net run continues with ``--c``; every command is logged per run.
The table (markdown + CSV, mean +/- sd over seeds) and the plot land in OUTPUT/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nnsynth_experiments.design import (
    ARMS,
    PROFILES,
    SHRINK_SOURCE_PLANS,
    Profile,
    RunSpec,
    assign_folds,
    check_same_training,
    choose_test_set,
    find_trainer,
    generators_needed,
    parse_sizes,
    planning_hint,
    profile_with,
    required_plans,
    subsample,
    subset_key,
    trainer_class,
)
from nnsynth_experiments.fold_owner import check_fold_dir, claim_fold_dir, fold_dir_owner, owner_tag
from nnsynth_experiments.pipeline import Pipeline, nnunet_environment
from nnsynth_experiments.report import (
    aggregate,
    csv_text,
    failed_runs,
    failed_runs_markdown,
    headline,
    markdown_table,
    paired_markdown,
    paired_rows,
    plot_dice,
    runs_csv_text,
    stratified_markdown,
    stratified_rows,
)
from nnsynth_trainers.registration import trainer_path
from nnunet_synth import arguments as arg
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import to_plain, write_json_atomic, write_text_atomic
from nnunet_synth.nnunet_io.folders import NNUNetFolders
from nnunet_synth.nnunet_io.plans import stage_features


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "experiment", help="data-scarce experiment: Dice vs number of real cases, real vs synthetic arms",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", type=arg.DATASET_ID, required=True)
    p.add_argument("--real-cases", nargs="+", default=["10", "20", "50", "all"],
                   help="numbers of real training cases (integers or 'all'; default 10 20 50 all)")
    p.add_argument("--arms", nargs="+", default=["real", "synth"], metavar="ARM",
                   help="trainers to compare on the same subsamples, the first is the reference (real only): "
                        f"aliases {', '.join(ARMS)} or trainer class names such as nnUNetTrainerSynthSPADE "
                        "(default: real synth); arms added later reuse every finished run")
    p.add_argument("--extra-test", nargs="+", default=[], metavar="SET",
                   help="more test sets scored by every run (out of domain): a folder with imagesTs/ + labelsTs/ "
                        "(or images/ + labels/), or IMAGES_DIR:LABELS_DIR; nnU-Net names (CASE_0000.nii.gz, "
                        "CASE.nii.gz), the dataset's channels")
    p.add_argument("--seeds", type=arg.POSITIVE, default=3, help="subsamples (and trainings) per size (default 3)")
    p.add_argument("--profile", choices=tuple(PROFILES), default="cpu-small",
                   help="cpu-small: shrunk plans and budget for 2 CPU cores; paper: nnU-Net's plans and budget; "
                        "paper-resenc: the same with nnU-Net's residual-encoder plans nnUNetResEncUNetMPlans "
                        "(plan with -pl nnUNetPlannerResEncM)")
    p.add_argument("--generators", choices=("gmm", "learned"), default="gmm",
                   help="gmm: real lesions + Gaussian-mixture renderer fitted per fold; learned: mask GAN + "
                        "pix2pix trained per fold on the subsample (default gmm)")
    p.add_argument("--test-cases", type=arg.POSITIVE, default=None,
                   help="held-out test cases taken from labelsTr when the dataset has no labelsTs "
                        "(default: a fifth)")
    p.add_argument("-j", "--jobs", type=arg.integer(1, 64), default=1,
                   help="runs trained side by side (on a CPU each gets cores/jobs torch threads; default 1)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="experiment folder (default $nnUNet_results/DatasetXXX_Name/nnsynth_experiment_<profile>)")
    g = p.add_argument_group("profile overrides")
    for name, kind in (("epochs", int), ("iterations", int), ("val-iterations", int), ("patch", int),
                       ("stages", int), ("base-features", int), ("max-features", int), ("batch-size", int),
                       ("maskgan-steps", int), ("translator-steps", int)):
        g.add_argument(f"--{name}", type=arg.POSITIVE if kind is int else kind, default=None)
    g.add_argument("--device", choices=("cpu", "cuda"), default=None)
    g.add_argument("--configuration", choices=("2d", "3d_fullres"), default=None,
                   help="nnU-Net configuration to train and predict with (plan it first)")
    g.add_argument("--maskgan-args", type=shlex.split, default=None,
                   help="extra train-maskgan arguments, one quoted string (e.g. \"--gen-filters 64\")")
    g.add_argument("--translator-args", type=shlex.split, default=None,
                   help="extra train-translator arguments, one quoted string (e.g. \"--filters 16 --crop 48\")")
    g.add_argument("--plans", default=None, type=arg.name("--plans"), help="plans identifier to train with")
    g.add_argument("--final-validation", action="store_true", default=None,
                   help="also run nnU-Net's final validation of each fold (the test set is scored anyway)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write results.{md,csv,json} from the runs of this design that have finished "
                        "(e.g. while the experiment still runs in another process)")
    p.set_defaults(func=main)


@dataclass
class ExperimentConfig:
    dataset_id: int
    sizes: list[str]
    arms: list[str]
    seeds: int
    profile: Profile
    generators: str = "gmm"
    test_cases: int | None = None
    extra_tests: list[str] = field(default_factory=list)
    output: Path | None = None
    jobs: int = 1
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    report_only: bool = False  # write the report from the finished runs, train nothing


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    overrides = {k: getattr(args, k) for k in ("epochs", "iterations", "val_iterations", "patch", "stages",
                                               "base_features", "max_features", "batch_size", "configuration",
                                               "maskgan_steps", "translator_steps", "device", "plans",
                                               "final_validation", "maskgan_args", "translator_args")}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return ExperimentConfig(dataset_id=args.dataset_id, sizes=list(args.real_cases), arms=list(args.arms),
                            seeds=args.seeds, profile=profile_with(args.profile, **overrides),
                            generators=args.generators, test_cases=args.test_cases,
                            extra_tests=list(args.extra_test), output=args.output,
                            jobs=args.jobs, report_only=args.report_only)


def main(args: argparse.Namespace) -> int:
    summary = run_experiment(config_from_args(args))
    print("\n" + summary["verdict"] + "\n\n" + summary["paired_markdown"] + "\n\n" + summary["table_markdown"])
    print(f"\nexperiment folder: {summary['output']}")
    return 0


def _case_ids(folder: Path, ending: str) -> list[str]:
    return sorted(p.name[: -len(ending)] for p in folder.glob(f"*{ending}")) if folder.is_dir() else []


def _has_lesion(label_file: Path) -> bool:
    import nibabel as nib
    import numpy as np

    return bool(np.asarray(nib.load(str(label_file)).dataobj).any())


def _link_test_set(raw: Path, test_ids: list[str], from_test: bool, out: Path, n_channels: int,
                   ending: str) -> tuple[Path, Path]:
    """Folders of symlinks holding exactly the test cases' images and labels (what predict/evaluate read)."""
    images, labels = out / "test_images", out / "test_labels"
    img_src, lab_src = (raw / "imagesTs", raw / "labelsTs") if from_test else (raw / "imagesTr", raw / "labelsTr")
    for folder in (images, labels):
        folder.mkdir(parents=True, exist_ok=True)
    for case in test_ids:
        pairs = [(img_src / f"{case}_{c:04d}{ending}", images / f"{case}_{c:04d}{ending}") for c in range(n_channels)]
        pairs.append((lab_src / f"{case}{ending}", labels / f"{case}{ending}"))
        for src, dst in pairs:
            if not src.is_file():
                raise NNSynthError(f"test case {case}: {src} not found")
            if not dst.is_symlink():
                dst.symlink_to(src.resolve())
    return images, labels


def resolve_extra_tests(specs: list[str], n_channels: int, ending: str) -> dict[str, tuple[Path, Path]]:
    """{name: (images folder, labels folder)} of the --extra-test sets, each checked against the dataset.

    A set is a folder with imagesTs/ + labelsTs/ (or images/ + labels/), named after the folder
    (``test_scanner-b`` -> ``scanner-b``), or ``IMAGES_DIR:LABELS_DIR``, named after the images folder.
    """
    sets: dict[str, tuple[Path, Path]] = {}
    for spec in specs:
        if ":" in spec:
            images, labels = (Path(p).resolve() for p in spec.split(":", 1))
            name = images.name
        else:
            root = Path(spec).resolve()
            pairs = [(root / i, root / lab) for i, lab in (("imagesTs", "labelsTs"), ("images", "labels"))]
            images, labels = next(((i, lab) for i, lab in pairs if i.is_dir() and lab.is_dir()), pairs[0])
            name = root.name.removeprefix("test_")
        for folder in (images, labels):
            if not folder.is_dir():
                raise NNSynthError(f"--extra-test {spec}: {folder} is not a folder (give a folder with imagesTs/ and "
                                   "labelsTs/, or IMAGES_DIR:LABELS_DIR)")
        cases = _case_ids(labels, ending)
        if not cases:
            raise NNSynthError(f"--extra-test {spec}: no {ending} labels in {labels}")
        for case in cases:
            found = sorted(p.name for p in images.glob(f"{case}_*{ending}"))
            expected = [f"{case}_{c:04d}{ending}" for c in range(n_channels)]
            if found != expected:
                raise NNSynthError(f"--extra-test {spec}: case {case} has images {found or 'none'} in {images}; the "
                                   f"dataset has {n_channels} channel(s), so expected {expected}")
        if name in sets or name == "in-domain":
            raise NNSynthError(f"--extra-test {spec}: a test set named {name!r} is given twice")
        sets[name] = (images, labels)
    return sets


class ExperimentRunner:
    """Prepares the design once, then trains / predicts / scores each run and writes the report."""

    def __init__(self, cfg: ExperimentConfig):
        self.cfg = cfg
        self.prof = cfg.profile
        env = dict(cfg.env)
        folders = NNUNetFolders.of(cfg.dataset_id, env)
        self.raw, self.pre = folders.raw, folders.preprocessed
        needed = required_plans(self.prof, self.pre)
        if self.raw is None or self.pre is None:
            raise NNSynthError(f"dataset {cfg.dataset_id} must be in $nnUNet_raw and planned+preprocessed: "
                               f"{planning_hint(cfg.dataset_id, needed, self.prof.configuration)}")
        if not (self.pre / f"{needed}.json").is_file():
            made_from = "" if needed == self.prof.plans else f", copied by nnsynth shrink-plans to {self.prof.plans}"
            raise NNSynthError(f"{self.pre / f'{needed}.json'} not found (plans of profile {self.prof.name}"
                               f"{made_from}): {planning_hint(cfg.dataset_id, needed, self.prof.configuration)}")
        self.out = (cfg.output or folders.results / f"nnsynth_experiment_{self.prof.name}").resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = nnunet_environment(None, str(trainer_path()), base=env)
        self.env.update({"NNSYNTH_EPOCHS": str(self.prof.epochs), "NNSYNTH_ITERATIONS": str(self.prof.iterations),
                         "NNSYNTH_VAL_ITERATIONS": str(self.prof.val_iterations),
                         "NNSYNTH_SAVE_EVERY": str(max(1, min(50, self.prof.epochs))),
                         "NNSYNTH_FINAL_VALIDATION": "1" if self.prof.final_validation else "0"})
        if cfg.jobs < 1:
            raise NNSynthError(f"--jobs must be >= 1, got {cfg.jobs}")
        if cfg.jobs > 1 and self.prof.device == "cpu":
            self.env["NNSYNTH_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // cfg.jobs))
        self.pipe = Pipeline(env=self.env, log_file=self.out / "experiment.log")

    # ---- design -------------------------------------------------------------------------------
    def prepare(self) -> list[RunSpec]:
        cfg, prof = self.cfg, self.prof
        dataset_json = json.loads((self.raw / "dataset.json").read_text())
        ending = dataset_json.get("file_ending", ".nii.gz")
        n_channels = len(dataset_json.get("channel_names", dataset_json.get("modality", {})))
        plans_file = self.pre / f"{prof.plans}.json"
        if prof.shrink and not plans_file.is_file():
            patch = [prof.patch] * self._patch_dims()
            self.pipe.run("shrink plans", ["nnsynth", "shrink-plans", "-d", cfg.dataset_id, "--plans-name",
                                           prof.plans, "-c", prof.configuration, "--patch-size", *patch,
                                           "--stages", prof.stages, "--base-features", prof.base_features,
                                           "--max-features", prof.max_features, "--batch-size", prof.batch_size])
        elif prof.shrink:  # plans made earlier must be the ones this profile asks for
            made = self._configuration_of(plans_file, "pass --plans with a new name (made for you)")
            stages = made["architecture"]["arch_kwargs"]["n_stages"]
            patch = [prof.patch] * len(made["patch_size"])
            features = list(made["architecture"]["arch_kwargs"]["features_per_stage"])
            wanted = stage_features(prof.base_features, prof.max_features, prof.stages)
            if (list(made["patch_size"]) != patch or stages != prof.stages or made["batch_size"] != prof.batch_size
                    or features != wanted):
                raise NNSynthError(f"{plans_file} has patch {made['patch_size']}, {stages} stages, batch "
                                   f"{made['batch_size']} and features {features} for {prof.configuration}, the "
                                   f"profile asks for {patch}, {prof.stages}, {prof.batch_size} and {wanted}: pass "
                                   "--plans with a new name (made for you) or matching --patch/--stages/--batch-size/"
                                   "--base-features/--max-features")
        elif not plans_file.is_file():
            raise NNSynthError(f"{plans_file} not found (plans of profile {prof.name}): "
                               f"{planning_hint(cfg.dataset_id, prof.plans, prof.configuration)}")
        self._check_configuration(plans_file)
        train_ids = _case_ids(self.raw / "labelsTr", ending)
        test_from_ts = _case_ids(self.raw / "labelsTs", ending)
        if test_from_ts and cfg.test_cases is None:
            test_ids, from_ts = test_from_ts, True
        else:
            n_test = cfg.test_cases if cfg.test_cases is not None else max(1, len(train_ids) // 5)
            test_ids, from_ts = choose_test_set(train_ids, n_test), False
        self.test_images, self.test_labels = _link_test_set(self.raw, test_ids, from_ts, self.out, n_channels,
                                                            ending)
        self.extra_tests = resolve_extra_tests(self.cfg.extra_tests, n_channels, ending)
        pool = [c for c in train_ids if c not in set(test_ids)]
        lesion_ids = {c for c in pool if _has_lesion(self.raw / "labelsTr" / f"{c}{ending}")}
        sizes, dropped = parse_sizes(cfg.sizes, len(pool))
        if dropped:
            print(f"experiment: --real-cases {', '.join(map(str, dropped))} left out: only {len(pool)} training "
                  "cases outside the test set", flush=True)
        subsets = {subset_key(n, s): subsample(pool, lesion_ids, n, s) for n in sizes for s in range(cfg.seeds)}
        design_file = self.out / "experiment.json"
        previous = json.loads(design_file.read_text()) if design_file.is_file() else {}
        if previous:
            check_same_training(previous, prof, cfg.generators, self.out)
            if previous.get("test_set", {}).get("cases") != test_ids:
                raise NNSynthError(f"{self.out} was run with another test set; use another -o folder")
        known = {k: v["fold"] for k, v in previous.get("subsets", {}).items()}
        folds = assign_folds(self.pre / "splits_final.json", train_ids, subsets, known, check=self._refuse_old_models,
                             owner=lambda key: owner_tag(self.out, key))
        self.subsets = subsets
        for key in sorted(k for k in subsets if k in known and known[k] != folds[k]):
            print(f"experiment: fold {known[key]} of splits_final.json no longer holds the subsample {key} "
                  f"(the file was re-created or another experiment folder took the index): it moves to fold "
                  f"{folds[key]}; its finished runs keep their results", flush=True)
        runs = [RunSpec(n, s, arm, folds[subset_key(n, s)], trainer_class(arm, cfg.generators).__name__)
                for n in sizes for s in range(cfg.seeds) for arm in cfg.arms]
        design = {"dataset": self.raw.name, "profile": asdict(prof), "generators": cfg.generators,
                  "extra_tests": {k: {"images": str(i), "labels": str(lab)}
                                  for k, (i, lab) in self.extra_tests.items()},
                  "test_set": {"source": "labelsTs" if from_ts else "held out of labelsTr", "cases": test_ids},
                  "training_pool": pool,
                  "subsets": {**previous.get("subsets", {}),
                              **{k: {"fold": folds[k], "cases": v} for k, v in subsets.items()}},
                  "runs": [r.to_dict() for r in runs]}
        write_json_atomic(design_file, design)
        print(f"experiment: {len(test_ids)} test cases ({design['test_set']['source']}), pool of {len(pool)} "
              f"training cases, sizes {sizes}, {cfg.seeds} seed(s), arms {cfg.arms}: {len(runs)} runs; "
              f"folds {sorted(set(folds.values()))} of {self.pre / 'splits_final.json'}", flush=True)
        return runs

    def _check_configuration(self, plans_file: Path) -> None:
        """Refuse, before anything is added to the splits, what nnUNetv2_train would fail on later: a configuration
        that was planned but not preprocessed, and learned generators (trained on 3d_fullres) with another one."""
        prof = self.prof
        made = self._configuration_of(plans_file, "pass --plans with a new name (made for you)")
        data = self.pre / made.get("data_identifier", f"{prof.plans}_{prof.configuration}")
        if not data.is_dir():
            hint = planning_hint(self.cfg.dataset_id, SHRINK_SOURCE_PLANS, prof.configuration)
            raise NNSynthError(f"{data} not found: configuration {prof.configuration} of {plans_file.name} is not "
                               f"preprocessed; {hint}")
        if prof.configuration != "3d_fullres":
            learned = [arm for arm in self.cfg.arms if generators_needed(trainer_class(arm, self.cfg.generators))]
            if learned:
                raise NNSynthError(f"arms {', '.join(learned)} need learned generators, which are trained on and "
                                   f"checked against 3d_fullres; the profile trains {prof.configuration}: leave "
                                   "them out or use a 3d_fullres profile")

    def _patch_dims(self) -> int:
        """2 or 3: the dimensionality of the configuration in the plans that shrink-plans copies."""
        hint = planning_hint(self.cfg.dataset_id, SHRINK_SOURCE_PLANS, self.prof.configuration)
        return len(self._configuration_of(self.pre / f"{SHRINK_SOURCE_PLANS}.json", hint)["patch_size"])

    def _configuration_of(self, plans_file: Path, fix: str) -> dict:
        """The profile's configuration in a plans file; refused with the file and ``fix`` when it is missing."""
        made = json.loads(plans_file.read_text())["configurations"].get(self.prof.configuration)
        if made is None:
            raise NNSynthError(f"{plans_file} has no configuration {self.prof.configuration!r}: {fix}")
        return made

    def _tag(self, run: RunSpec) -> str:
        return owner_tag(self.out, subset_key(run.n_real, run.seed))

    def _refuse_old_models(self, key: str, fold: int) -> None:
        """A fold index just given to a subsample must not hold models yet: runs reuse a fold's checkpoints
        and generators, which were then trained on other cases (splits_final.json re-created while
        $nnUNet_results kept its folds)."""
        results = Path(self.env["nnUNet_results"]) / self.raw.name
        tag = owner_tag(self.out, key)  # a fold folder this subsample itself trained in may stay
        found = sorted([*(f for f in results.glob(f"*__*__{self.prof.configuration}/fold_{fold}/checkpoint*.pth")
                          if fold_dir_owner(f.parent) != tag),
                        *results.glob(f"nnsynth/*_fold{fold}.pt"), *results.glob(f"nnsynth/*_fold{fold}_latest.pt")])
        if found:
            listed = ", ".join(str(f) for f in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            raise NNSynthError(f"fold {fold} of {self.pre / 'splits_final.json'} is new for the subsample {key}, but "
                               f"{listed} already exist: models that may have been trained on other cases under the "
                               "same fold index (was splits_final.json re-created?). Move those fold folders and "
                               "generator files away, then run again; splits_final.json was not changed")

    # ---- one run ------------------------------------------------------------------------------
    def _fold_dir(self, trainer: str, fold: int) -> Path:
        prof = self.prof
        return (Path(self.env["nnUNet_results"]) / self.raw.name / f"{trainer}__{prof.plans}__{prof.configuration}"
                / f"fold_{fold}")

    def train_generators(self, runs: list[RunSpec]) -> None:
        """The learned generators each fold's arms need, trained on the fold's subsample one after another
        (before runs go side by side)."""
        for fold in sorted({r.fold for r in runs}):
            todo = [r for r in runs if r.fold == fold and not (self.out / "runs" / r.name / "result.json").is_file()]
            kinds = {k for r in todo for k in generators_needed(find_trainer(r.trainer))}
            if kinds:
                self._train_generators(self.pipe, fold, [k for k in ("maskgan", "pix2pix", "spade") if k in kinds])

    def _train_generators(self, pipe: Pipeline, fold: int, kinds: list[str]) -> None:
        gen_dir = Path(self.env["nnUNet_results"]) / self.raw.name / "nnsynth"
        commands = {"maskgan": (["nnsynth", "train-maskgan", *self.prof.maskgan_args], self.prof.maskgan_steps),
                    **{arch: (["nnsynth", "train-translator", "--arch", arch, *self.prof.translator_args],
                              self.prof.translator_steps) for arch in ("pix2pix", "spade")}}
        for kind in kinds:
            command, steps = commands[kind]
            if (gen_dir / f"{kind}_fold{fold}.pt").is_file():
                continue
            resume = ["--continue"] if (gen_dir / f"{kind}_fold{fold}_latest.pt").is_file() else []
            pipe.run(f"train {kind} on fold {fold}", [*command, "-d", self.cfg.dataset_id, "--fold", fold,
                                                      "--device", self.prof.device, "--steps", steps,
                                                      "--no-progress", *resume])

    def run_one(self, run: RunSpec, index: int, total: int) -> dict:
        run_dir = self.out / "runs" / run.name
        result_file = run_dir / "result.json"
        if result_file.is_file():
            result = json.loads(result_file.read_text())
            missing = [k for k in self.extra_tests if k not in result.get("extra_tests", {})]
            if not missing:
                print(f"[{index}/{total}] {run.name}: finished earlier, skipped", flush=True)
                return result
            print(f"[{index}/{total}] {run.name}: finished earlier; scoring the new test sets {missing}", flush=True)
            trained_in = result.get("fold", run.fold)
            if trained_in != run.fold:  # the subsample moved to a new fold after this run trained
                if fold_dir_owner(Path(result["fold_dir"])) != self._tag(run):
                    raise NNSynthError(f"{run.name} was trained in fold {trained_in}, which now belongs to another "
                                       f"subsample, and {result['fold_dir']} does not say it is still this run's "
                                       f"model: it cannot score the new test sets {missing}; use a new -o folder")
                run = dataclasses.replace(run, fold=trained_in)
            pipe = Pipeline(env=self.env, log_file=run_dir / "run.log", quiet=self.cfg.jobs > 1)
            result["extra_tests"] = {**result.get("extra_tests", {}), **self._score_extra(run, pipe, missing)}
            write_json_atomic(result_file, result)
            return result
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f"\n[{index}/{total}] {run.name}: {run.n_real} real cases (fold {run.fold}), {run.trainer}", flush=True)
        pipe = Pipeline(env=self.env, log_file=run_dir / "run.log", quiet=self.cfg.jobs > 1)
        ds = self.cfg.dataset_id
        fold_dir = self._fold_dir(run.trainer, run.fold)
        check_fold_dir(fold_dir, self._tag(run))
        t0 = time.perf_counter()
        if not (fold_dir / "checkpoint_final.pth").is_file():
            claim_fold_dir(fold_dir, self._tag(run), self.subsets[subset_key(run.n_real, run.seed)])
            resume = ["--c"] if (fold_dir / "checkpoint_latest.pth").is_file() else []
            pipe.run(f"train {run.name}", ["nnUNetv2_train", ds, self.prof.configuration, run.fold, "-tr",
                                           run.trainer, "-p", self.prof.plans, "-device", self.prof.device, *resume])
        train_s = time.perf_counter() - t0
        pred = run_dir / "predictions"
        pipe.run(f"predict {run.name}", ["nnUNetv2_predict", "-i", self.test_images, "-o", pred, "-d", ds, "-c",
                                         self.prof.configuration, "-tr", run.trainer, "-p", self.prof.plans, "-f",
                                         run.fold,
                                         "-device", self.prof.device, "--disable_tta", "-npp", 1, "-nps", 1])
        pipe.run(f"evaluate {run.name}", ["nnUNetv2_evaluate_folder", self.test_labels, pred, "-djfile",
                                          pred / "dataset.json", "-pfile", pred / "plans.json", "-np", 1])
        pipe.run(f"stroke metrics {run.name}", ["nnsynth", "evaluate", self.test_labels, pred, "-o",
                                                pred / "stroke_metrics.json"])
        stroke = json.loads((pred / "stroke_metrics.json").read_text())["mean"]
        nnunet_summary = json.loads((pred / "summary.json").read_text())
        extra = self._score_extra(run, pipe, list(self.extra_tests))
        result = {**run.to_dict(), "name": run.name, "dice_nnunet": nnunet_summary["foreground_mean"]["Dice"],
                  **stroke, "extra_tests": extra, "train_seconds": round(train_s, 1),
                  "fold_dir": str(fold_dir), "timings_seconds": {k: round(v, 1) for k, v in pipe.timings}}
        result = to_plain(result, nan_to_none=True)
        write_json_atomic(result_file, result)
        scores = ", ".join(f"{label} {result[key]:.3f}" if result[key] is not None else f"{label} n/a"
                           for key, label in (("dice", "Dice (ISLES)"), ("lesion_f1", "lesion F1")))
        print(f"[{index}/{total}] {run.name}: {scores}", flush=True)
        return result

    def _score_extra(self, run: RunSpec, pipe: Pipeline, names: list[str]) -> dict[str, dict]:
        """Predict and score the extra test sets ``names`` with the run's trained fold."""
        scores = {}
        for name in names:
            images, labels = self.extra_tests[name]
            pred = self.out / "runs" / run.name / f"predictions_{name}"
            pipe.run(f"predict {run.name} on {name}", [
                "nnUNetv2_predict", "-i", images, "-o", pred, "-d", self.cfg.dataset_id, "-c",
                self.prof.configuration, "-tr", run.trainer, "-p", self.prof.plans, "-f", run.fold, "-device",
                self.prof.device, "--disable_tta", "-npp", 1, "-nps", 1])
            pipe.run(f"stroke metrics {run.name} on {name}", ["nnsynth", "evaluate", labels, pred, "-o",
                                                              pred / "stroke_metrics.json"])
            scores[name] = to_plain(json.loads((pred / "stroke_metrics.json").read_text())["mean"], nan_to_none=True)
        return scores

    # ---- report -------------------------------------------------------------------------------
    def report(self, results: list[dict]) -> dict:
        rows = aggregate(results)
        table = markdown_table(rows)
        reference = self.cfg.arms[0]
        blocks = {}  # test set -> (paired rows, stratified rows)
        for name, folder in (("in-domain", "predictions"), *((k, f"predictions_{k}") for k in self.extra_tests)):
            per_case = {}
            for r in results:
                metrics_file = self.out / "runs" / r["name"] / folder / "stroke_metrics.json"
                if metrics_file.is_file():
                    per_case[r["name"]] = json.loads(metrics_file.read_text())["per_case"]
            blocks[name] = (paired_rows(results, per_case, reference), stratified_rows(results, per_case))
            if name == "in-domain":
                failed_section = failed_runs_markdown(results, per_case, reference)
        paired = blocks["in-domain"][0]
        verdict = headline(paired)
        failed = [r["name"] for r in failed_runs(results)]
        warning = (f"Warning: {len(failed)} run(s) never learned the lesions ({', '.join(failed)}); see 'Runs that "
                   "never learned the lesions' below.\n\n" if failed else "")
        prof = self.prof
        budget = (f"profile {prof.name}: plans {prof.plans}, {prof.epochs} epochs x {prof.iterations} iterations"
                  + (f", {prof.configuration}, patch {prof.patch}^{2 if prof.configuration == '2d' else 3}, "
                     f"batch {prof.batch_size}" if prof.shrink else f", {prof.configuration}")
                  + f", generators {self.cfg.generators}")
        n_test = len(json.loads((self.out / "experiment.json").read_text())["test_set"]["cases"])
        write_text_atomic(self.out / "results.md",
            f"# nnsynth experiment on {self.raw.name}\n\n**{verdict}**\n\n{warning}{budget}; {n_test} held-out test "
            "cases. "
            f"Paired differences to the {reference} arm (same subsample per seed, same test cases): 95% CI from a "
            "hierarchical bootstrap (seeds, then one draw of the test cases shared by the drawn seeds), p from a "
            "paired t-test over the seeds' mean differences; 'helps'/'hurts' only when the CI excludes 0 and "
            "p < 0.05; training sd = sd of the per-seed mean differences, test sd = bootstrap sd over test "
            f"cases.\n\n" + "\n\n".join(f"## {name}\n\n**{headline(rows)}**\n\n{paired_markdown(rows)}\n\n"
                                          f"By reference lesion volume:\n\n{stratified_markdown(strata)}"
                                          for name, (rows, strata) in blocks.items())
            + (f"\n\n{failed_section}" if failed_section else "")
            + "\n\n## Per arm (in-domain)\n\nMean +/- sd over seeds (subsamples); Dice (ISLES): "
            "nnsynth evaluate, 1.0 for two empty masks; Dice (nnU-Net): nnUNetv2_evaluate_folder's foreground "
            f"mean (both-empty cases left out).\n\n{table}\n\n![Dice vs real cases](dice_vs_real_cases.png)\n")
        write_text_atomic(self.out / "results.csv", csv_text(rows))
        write_text_atomic(self.out / "runs.csv", runs_csv_text(results))
        plot_dice(rows, self.out / "dice_vs_real_cases.png", f"{self.raw.name}, {budget}")
        summary = {"output": str(self.out), "rows": rows, "paired": paired, "verdict": verdict, "runs": results,
                   "failed_runs": failed,
                   "test_sets": {name: {"paired": rows_, "by_lesion_size": strata}
                                 for name, (rows_, strata) in blocks.items()},
                   "table_markdown": table, "paired_markdown": paired_markdown(paired)}
        write_json_atomic(self.out / "results.json", summary)
        return summary


def run_experiment(cfg: ExperimentConfig) -> dict:
    runner = ExperimentRunner(cfg)
    start = time.perf_counter()
    if cfg.report_only:
        return report_finished(runner, start)
    runs = runner.prepare()
    runner.train_generators(runs)
    if cfg.jobs > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(cfg.jobs) as pool:  # each run is a chain of subprocesses
            results = list(pool.map(lambda ir: runner.run_one(ir[1], ir[0] + 1, len(runs)), enumerate(runs)))
    else:
        results = [runner.run_one(r, i + 1, len(runs)) for i, r in enumerate(runs)]
    summary = runner.report(results)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary


def report_finished(runner: ExperimentRunner, start: float) -> dict:
    """The report of the finished runs of an experiment folder, read while the experiment may go on.

    Writes nothing but the report: the design (runs, folds, test sets) is read from ``experiment.json``,
    filtered to the arms, seeds and sizes asked for; nothing is planned, trained or added to the splits.
    """
    from nnsynth_experiments.design import RunSpec

    cfg = runner.cfg
    design_file = runner.out / "experiment.json"
    if not design_file.is_file():
        raise NNSynthError(f"--report-only: {runner.out} holds no experiment (no experiment.json); give the -o "
                           "folder of a running or finished experiment")
    design = json.loads(design_file.read_text())
    check_same_training(design, runner.prof, cfg.generators, runner.out)  # the report names the recorded budget
    runner.extra_tests = {k: (Path(v["images"]), Path(v["labels"])) for k, v in design.get("extra_tests", {}).items()}
    pool = len(design.get("training_pool", []))
    sizes = {pool if str(n) == "all" else int(n) for n in cfg.sizes}
    planned = {r.name: r for r in (RunSpec(**r) for r in design.get("runs", []))}
    finished = {}
    for result_file in sorted((runner.out / "runs").glob("*/result.json")):
        result = json.loads(result_file.read_text())
        finished[result["name"]] = result
    wanted = lambda r: r["arm"] in cfg.arms and r["seed"] < cfg.seeds and r["n_real"] in sizes  # noqa: E731
    results = [r for r in finished.values() if wanted(r)]
    missing = [name for name, r in planned.items() if name not in finished and wanted(r.to_dict())]
    incomplete = [r["name"] for r in results if any(k not in r.get("extra_tests", {}) for k in runner.extra_tests)]
    results = [r for r in results if r["name"] not in incomplete]
    if not results:
        raise NNSynthError(f"no finished run of arms {cfg.arms} in {runner.out}")
    print(f"experiment: report of {len(results)} finished runs; not finished yet: {', '.join(missing) or 'none'}"
          + (f"; not scored on every extra test set yet: {', '.join(incomplete)}" if incomplete else ""), flush=True)
    order = {arm: i for i, arm in enumerate(cfg.arms)}
    results.sort(key=lambda r: (r["n_real"], r["seed"], order[r["arm"]]))
    summary = runner.report(results)
    summary["not_finished"] = missing + incomplete
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary
