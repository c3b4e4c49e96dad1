"""The design of the data-scarce experiment: profiles, the fixed test set, nested subsamples, folds.

Every (number of real cases, seed) pair becomes one extra fold appended to the dataset's
``splits_final.json``. nnU-Net's own fold mechanism then keeps the runs apart: each arm's results
land in ``<trainer>__<plans>__3d_fullres/fold_<F>``, the generators of that subsample in
``nnsynth/<kind>_fold<F>.pt``, and the synthesis engine only ever sees the fold's training cases,
so nothing leaks from cases a run was not given. Existing folds (a user's 5-fold CV) are left as
they are. Validation keys equal the training keys: the experiment scores the fixed test set and
nnU-Net's per-epoch pseudo Dice needs some keys, but no real case may be withheld from a subsample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from nnsynth_experiments.fold_owner import TAG_KEY, splits_lock
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import to_plain
from nnunet_synth.nnunet_io.folds import splits_or_default, write_splits

ARMS = ("real", "synth", "synth-only")  # the aliases; any trainer class name is an arm too


ARM_ALIASES = {  # short arm name -> trainer, for --generators gmm / learned
    "real": ("nnUNetTrainerBudget", "nnUNetTrainerBudget"),
    "synth": ("nnUNetTrainerSynth", "nnUNetTrainerSynthPix2pix"),
    "synth-only": ("nnUNetTrainerSynthOnly", "nnUNetTrainerSynthOnlyPix2pix"),
}


def find_trainer(name: str) -> type:
    """A trainer class by name: nnsynth's own, else nnU-Net's lookup (which honours nnUNet_extTrainer)."""
    from nnsynth_trainers import budget, synth_trainer

    for module in (synth_trainer, budget):
        if isinstance(getattr(module, name, None), type):
            return getattr(module, name)
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        found = recursive_find_trainer_class_by_name(name)
    except RuntimeError:
        found = None
    if found is None:
        raise NNSynthError(f"no trainer class {name!r} (an arm is one of {', '.join(ARM_ALIASES)} or a trainer "
                           "class of nnsynth or of the folders in nnUNet_extTrainer)")
    return found


def trainer_class(arm: str, generators: str) -> type:
    """The trainer class of an arm: an alias (``real``, ``synth``, ``synth-only``) or a trainer class name."""
    if arm in ARM_ALIASES:
        return find_trainer(ARM_ALIASES[arm][generators == "learned"])
    return find_trainer(arm)


def generators_needed(trainer: type) -> tuple[str, ...]:
    """The learned generators (checkpoint kinds) a trainer's synthesis uses, in training order."""
    from nnunet_synth.synthesis.registry import generator_kinds

    if getattr(trainer, "synth_fraction", 0) <= 0:
        return ()
    return generator_kinds(getattr(trainer, "lesion_source", "real"), getattr(trainer, "renderer", "gmm"))


@dataclass(frozen=True)
class Profile:
    """Plans and budgets of one experiment profile (every field can be overridden on the command line)."""

    name: str
    plans: str
    shrink: bool  # make `plans` with `nnsynth shrink-plans` from nnUNetPlans
    patch: int
    stages: int
    base_features: int
    epochs: int
    iterations: int
    val_iterations: int
    device: str
    maskgan_steps: int
    translator_steps: int
    final_validation: bool = False
    configuration: str = "3d_fullres"  # nnU-Net configuration the runs train and predict with ("2d" or "3d_fullres")
    batch_size: int = 2  # of the shrunk plans
    max_features: int = 64  # of the shrunk plans' deepest stage
    maskgan_args: tuple[str, ...] = ()  # extra `nnsynth train-maskgan` arguments (model size, batch, ...)
    translator_args: tuple[str, ...] = ()  # extra `nnsynth train-translator` arguments


PROFILES = {
    # 2 CPU cores, demo cohort at 3 mm: 1500 iterations of ~0.13 s (nnU-Net learned nothing at 600 on the
    # demo cohort, 10 real cases, and reached test Dice 0.62 at 1500)
    "cpu-small": Profile("cpu-small", plans="nnsynthCPU", shrink=True, patch=32, stages=4, base_features=8,
                         epochs=60, iterations=25, val_iterations=2, device="cpu", maskgan_steps=300,
                         translator_steps=200, maskgan_args=("--gen-filters", "64"),
                         translator_args=("--filters", "16", "--max-filters", "128", "--crop", "48",
                                          "--disc-filters", "16,32,64,128")),
    # nnU-Net's own 2d configuration, shrunk: slices of 64^2, batch 32, 16-128 features (about 0.7 s an iteration
    # with two runs side by side on 2 cores); a candidate of the protocol search (docs/experiment_protocol)
    "cpu-2d": Profile("cpu-2d", plans="nnsynthCPU2d", shrink=True, patch=64, stages=4, base_features=16,
                      epochs=48, iterations=25, val_iterations=2, device="cpu", maskgan_steps=300,
                      translator_steps=200, configuration="2d", batch_size=32, max_features=128,
                      maskgan_args=("--gen-filters", "64"),
                      translator_args=("--filters", "16", "--max-filters", "128", "--crop", "48",
                                       "--disc-filters", "16,32,64,128")),
    # nnU-Net's normal plans and budget (1000 x 250) on a GPU, generators as in the paper's order of magnitude
    "paper": Profile("paper", plans="nnUNetPlans", shrink=False, patch=0, stages=0, base_features=0,
                     epochs=1000, iterations=250, val_iterations=50, device="cuda", maskgan_steps=20000,
                     translator_steps=20000),
}
# the same on nnU-Net's residual-encoder preset M (its recommendation since 2024, for GPUs of 9-11 GB)
PROFILES["paper-resenc"] = replace(PROFILES["paper"], name="paper-resenc", plans="nnUNetResEncUNetMPlans")

# plans a profile makes with `nnsynth shrink-plans` are copied from these
SHRINK_SOURCE_PLANS = "nnUNetPlans"
# the planner (nnUNetv2_plan_and_preprocess -pl) that writes each of nnU-Net's own plans
PLANNERS = {"nnUNetPlans": None, "nnUNetResEncUNetMPlans": "nnUNetPlannerResEncM",
            "nnUNetResEncUNetLPlans": "nnUNetPlannerResEncL", "nnUNetResEncUNetXLPlans": "nnUNetPlannerResEncXL"}


def planning_hint(dataset_id: int, plans: str, configuration: str = "3d_fullres") -> str:
    """The command that writes ``plans`` (so a missing plans file names its fix)."""
    if plans not in PLANNERS:
        return (f"plans {plans} are not nnU-Net's own: make them with nnsynth shrink-plans -d {dataset_id} "
                f"--plans-name {plans} or your own planner")
    planner = PLANNERS[plans]
    return (f"run nnUNetv2_plan_and_preprocess -d {dataset_id}" + (f" -pl {planner}" if planner else "")
            + f" -c {configuration} first")


def required_plans(profile: Profile, preprocessed: Path | None) -> str:
    """The plans that must exist before a run: the profile's own, or the source of those it shrinks."""
    if profile.shrink and (preprocessed is None or not (preprocessed / f"{profile.plans}.json").is_file()):
        return SHRINK_SOURCE_PLANS
    return profile.plans


def profile_with(name: str, **overrides) -> Profile:
    if name not in PROFILES:
        raise NNSynthError(f"unknown profile {name!r} (choose from {', '.join(PROFILES)})")
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})


def parse_sizes(values: list[str], pool_size: int) -> tuple[list[int], list[int]]:
    """``10 20 50 all`` -> (sorted unique sizes, sizes dropped because the pool is smaller).

    A size beyond the pool is left out with a notice rather than capped (a capped 50 would silently
    repeat the 'all' runs); when nothing is left the request is an error.
    """
    sizes, dropped = set(), set()
    for v in values:
        if str(v).lower() == "all":
            sizes.add(pool_size)
            continue
        try:
            n = int(v)
        except ValueError as exc:
            raise NNSynthError(f"--real-cases takes integers or 'all', got {v!r}") from exc
        if n < 1:
            raise NNSynthError(f"--real-cases {n}: need at least one real case")
        (sizes if n <= pool_size else dropped).add(n)
    if not sizes:
        raise NNSynthError(f"--real-cases {' '.join(map(str, values))}: the dataset has only {pool_size} training "
                           "cases outside the test set (use 'all' for every one of them)")
    return sorted(sizes), sorted(dropped)


def subsample(pool: list[str], lesion_ids: set[str], n: int, seed: int) -> list[str]:
    """The first n cases of the seed's permutation of the pool, with at least one lesion case.

    One permutation per seed makes the subsamples nested (10 of seed s are inside 20 of seed s), so the
    curve over n compares growing sets instead of unrelated draws.
    """
    order = [pool[i] for i in np.random.default_rng([20101006, seed]).permutation(len(pool))]
    chosen = order[:n]
    if not any(c in lesion_ids for c in chosen):
        first = next((c for c in order if c in lesion_ids), None)
        if first is None:
            raise NNSynthError("no training case outside the test set has a lesion")
        chosen = [first] + [c for c in chosen if c != first][: n - 1]
    return sorted(chosen)


def choose_test_set(case_ids: list[str], n_test: int) -> list[str]:
    """A fixed held-out test set (when the dataset has no labelsTs): the same for every run and seed."""
    if not 1 <= n_test < len(case_ids):
        raise NNSynthError(f"--test-cases {n_test}: need at least one test and one training case "
                           f"out of {len(case_ids)}")
    order = np.random.default_rng(20101006).permutation(len(case_ids))
    return sorted(case_ids[i] for i in order[:n_test])


def assign_folds(splits_file: Path, training_ids: list[str], subsets: dict[str, list[str]],
                 previous: dict[str, int] | None = None, check: Callable[[str, int], None] | None = None,
                 owner: Callable[[str], str] | None = None) -> dict[str, int]:
    """Fold index of each subset key in splits_final.json: its fold from an earlier call, else a new one.

    ``previous`` (the experiment folder's own record) is the only way to reuse a fold: two keys never
    share one, even when their training lists are equal (``all`` with several seeds, whose runs differ by
    nnU-Net's training randomness), and another experiment folder never picks up these results.
    ``owner(key)`` is the key's owner tag (``fold_owner``), written into its split entry: a recorded fold
    is kept only while it holds the subsample's cases and no other owner's tag (an untagged entry of
    the same cases, written by an older version, is adopted). Otherwise (splits_final.json re-created,
    or its index taken by another experiment folder) the subsample gets a new fold; finished runs keep
    their results, which are stored by run name. ``check(key, index)`` is called for every newly given
    fold before anything is written, so a caller can refuse an index whose folders hold older models.
    The file is rewritten atomically under a lock and only ever grows; nnU-Net's own folds stay.
    """
    with splits_lock(splits_file):
        splits = splits_or_default(splits_file.parent, training_ids)
        folds: dict[str, int] = {}
        refusals: list[str] = []
        for key, train in subsets.items():
            entry = {"train": sorted(train), "val": sorted(train), **({TAG_KEY: owner(key)} if owner else {})}
            index = (previous or {}).get(key)
            if index is None or index >= len(splits) or index in folds.values() or not _holds(splits[index], entry):
                splits.append(entry)
                index = len(splits) - 1
                if check is not None:
                    try:
                        check(key, index)
                    except NNSynthError as exc:  # collect them: one run of the command names them all
                        refusals.append(str(exc))
            splits[index] = entry
            folds[key] = index
        if refusals:
            raise NNSynthError("\n".join(refusals))
        write_splits(splits_file.parent, splits)
    return folds


def _holds(split: dict, entry: dict) -> bool:
    same_cases = sorted(split.get("train", [])) == entry["train"] and sorted(split.get("val", [])) == entry["val"]
    return same_cases and split.get(TAG_KEY) in (None, entry.get(TAG_KEY))


# fields that change what a run trains; a finished experiment folder refuses to be resumed with others
TRAINING_FIELDS = ("plans", "patch", "stages", "base_features", "epochs", "iterations", "maskgan_steps",
                   "translator_steps", "maskgan_args", "translator_args", "configuration", "batch_size",
                   "max_features")


# what every run of an older version trained with, before these fields were recorded in experiment.json
FIELDS_BEFORE_RECORDED = {"configuration": "3d_fullres", "batch_size": 2, "max_features": 64}


def check_same_training(previous: dict, profile: Profile, generators: str, folder: Path) -> None:
    """Refuse to mix runs of different budgets or generators in one experiment folder."""
    plain = to_plain
    recorded = {**FIELDS_BEFORE_RECORDED, **previous.get("profile", {})}
    fields = [k for k in TRAINING_FIELDS if k in recorded]  # a field an older version did not record is not held
    diff = {k: (plain(recorded[k]), plain(getattr(profile, k))) for k in fields
            if plain(recorded[k]) != plain(getattr(profile, k))}
    if previous.get("generators", generators) != generators:
        diff["generators"] = (previous.get("generators"), generators)
    if diff:
        details = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items())
        raise NNSynthError(f"{folder} holds runs trained with other settings ({details}); use another -o folder")


@dataclass(frozen=True)
class RunSpec:
    n_real: int
    seed: int
    arm: str
    fold: int
    trainer: str

    @property
    def name(self) -> str:
        return f"n{self.n_real:03d}_seed{self.seed}_{self.arm}"

    def to_dict(self) -> dict:
        return asdict(self)


def subset_key(n_real: int, seed: int) -> str:
    return f"n{n_real}_seed{seed}"
