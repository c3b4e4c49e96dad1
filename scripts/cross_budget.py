"""Paired comparison of arms from different experiment folders (budgets) on the same subsamples.

`nnsynth experiment` pairs the arms of one folder, which share one training budget. Some questions need
arms of two budgets: does a synthetic arm that sees as many *real* samples as the reference (twice the
iterations at a 50% synthetic share) gain over it, and does the reference gain as much from the same
extra compute? Two folders of one dataset on the same subsamples answer both. This script pairs runs by
(number of real cases, seed), checks that both folders trained that seed on the same cases and scored the
same test cases, and reports the report's paired statistics (hierarchical bootstrap CI, paired t over
seeds, seeds better) per test set and metric.

    python scripts/cross_budget.py real60=docs/experiment_evidence:real \\
        real120=docs/experiment_protocol/epochs120:real \\
        inpaint120=docs/experiment_protocol/epochs120:nnUNetTrainerSynthInpaint \\
        --pairs inpaint120-real60 real120-real60 inpaint120-real120 -o docs/experiment_protocol/cross_budget.md
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from nnsynth_experiments.design import subset_key
from nnsynth_experiments.report import PAIRED_METRICS
from nnunet_synth.evaluation.paired import paired_difference
from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic

FORMATS = {metric: fmt for metric, _, fmt in PAIRED_METRICS}


class Side:
    """One arm of one experiment folder: its finished runs, subsamples, test cases and per-case scores."""

    def __init__(self, label: str, folder: Path, arm: str):
        self.label, self.folder, self.arm = label, folder, arm
        design_file = folder / "experiment.json"
        if not design_file.is_file():
            raise SystemExit(f"{label}: {design_file} missing (not an nnsynth experiment folder)")
        design = json.loads(design_file.read_text())
        self.subsets = {k: sorted(v["cases"]) for k, v in design.get("subsets", {}).items()}
        self.test_cases = design["test_set"]["cases"]
        self.extra_tests = {k: v.get("labels") for k, v in design.get("extra_tests", {}).items()}
        self.epochs = design.get("profile", {}).get("epochs")
        self.iterations = design.get("profile", {}).get("iterations")
        self.runs = {}
        for result_file in sorted((folder / "runs").glob(f"n*_seed*_{arm}/result.json")):
            run = json.loads(result_file.read_text())
            if run["arm"] == arm:
                self.runs[(run["n_real"], run["seed"])] = run

    def scores(self, n_real: int, seed: int, test_set: str, metric: str) -> dict[str, float] | None:
        per_case = self._per_case(n_real, seed, test_set)
        return None if per_case is None else {case: values.get(metric) for case, values in per_case.items()}

    @functools.cache  # noqa: B019 (a Side lives as long as the script): one read per run and test set
    def _per_case(self, n_real: int, seed: int, test_set: str) -> dict[str, dict] | None:
        folder = "predictions" if test_set == "in-domain" else f"predictions_{test_set}"
        metrics_file = self.folder / "runs" / self.runs[(n_real, seed)]["name"] / folder / "stroke_metrics.json"
        return json.loads(metrics_file.read_text())["per_case"] if metrics_file.is_file() else None


def common_seeds(reference: Side, arm: Side, n_real: int) -> list[int]:
    """Seeds both sides finished at n_real, refusing a seed whose two subsamples differ."""
    seeds = sorted(s for n, s in set(reference.runs) & set(arm.runs) if n == n_real)
    for s in seeds:
        key = subset_key(n_real, s)
        if key not in reference.subsets or key not in arm.subsets:
            raise SystemExit(f"{key}: not recorded in the experiment.json of both {reference.label} and {arm.label}")
        if reference.subsets[key] != arm.subsets[key]:
            raise SystemExit(f"{key}: {reference.label} and {arm.label} trained on different cases; not paired")
    return seeds


def compare(reference: Side, arm: Side, test_sets: list[str]) -> list[dict]:
    if reference.test_cases != arm.test_cases:
        raise SystemExit(f"{reference.label} and {arm.label} were scored on different test sets; not paired")
    for name in (t for t in test_sets if t != "in-domain"):
        if reference.extra_tests.get(name) != arm.extra_tests.get(name):
            raise SystemExit(f"extra test set {name!r}: {reference.label} scored {reference.extra_tests.get(name)}, "
                             f"{arm.label} {arm.extra_tests.get(name)}; not paired")
    rows = []
    for n_real in sorted({n for n, _ in set(reference.runs) & set(arm.runs)}):
        seeds = common_seeds(reference, arm, n_real)
        for test_set in test_sets:
            for metric, title, _ in PAIRED_METRICS:
                ref = {s: reference.scores(n_real, s, test_set, metric) for s in seeds}
                other = {s: arm.scores(n_real, s, test_set, metric) for s in seeds}
                ref = {s: v for s, v in ref.items() if v is not None and other[s] is not None}
                other = {s: other[s] for s in ref}
                if not ref:
                    continue
                try:
                    d = paired_difference(ref, other, metric)
                except ValueError:  # the metric is undefined on every case (e.g. lesion F1 of lesion-free sets)
                    continue
                rows.append({"arm": arm.label, "reference": reference.label, "n_real": n_real,
                             "test_set": test_set, "metric": metric, "metric_title": title, **d.to_dict()})
    return rows


def markdown(rows: list[dict], sides: dict[str, Side]) -> str:
    budgets = "; ".join(f"`{s.label}` = arm {s.arm} of `{s.folder}` ({s.epochs} epochs x {s.iterations} "
                        f"iterations)" for s in sides.values())
    lines = [
        "# Paired differences across budgets", "",
        f"Arms: {budgets}.", "",
        "Pairs share the subsample of each seed and the test cases. 95% CI from the hierarchical bootstrap "
        "(seeds, then one shared draw of the test cases), p from a paired t-test over the seeds' mean differences "
        "(`nnunet_synth.evaluation.paired`); 'helps'/'hurts' needs both to exclude 0.", "",
        "| arm - reference | real cases | test set | metric | seeds | difference [95% CI] | p | seeds better "
        "| training sd | verdict |",
        "|" + "---|" * 10,
    ]
    for r in rows:
        p = "n/a" if r["p_value"] is None else f"{r['p_value']:.3f}"
        sd = "n/a" if r["training_sd"] is None else f"{r['training_sd']:.3f}"
        fmt = FORMATS[r["metric"]]
        lines.append(f"| {r['arm']} - {r['reference']} | {r['n_real']} | {r['test_set']} | {r['metric_title']} | "
                     f"{r['n_seeds']} | {fmt.format(r['mean_difference'])} [{fmt.format(r['ci_low'])}, "
                     f"{fmt.format(r['ci_high'])}] | {p} | {r['seeds_better']}/{r['n_seeds']} | {sd} | "
                     f"{r['verdict']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sides", nargs="+", metavar="LABEL=FOLDER:ARM")
    parser.add_argument("--pairs", nargs="+", required=True, metavar="ARM_LABEL-REFERENCE_LABEL")
    parser.add_argument("--test-sets", nargs="+", default=None,
                        help="default: in-domain and every extra test set the first side scored")
    parser.add_argument("-o", "--output", type=Path, required=True, help="markdown file; a .json beside it")
    args = parser.parse_args(argv)
    sides = {}
    for spec in args.sides:
        label, _, rest = spec.partition("=")
        folder, _, arm = rest.rpartition(":")
        if not label or not folder or not arm or "-" in label:
            parser.error(f"{spec!r}: expected LABEL=FOLDER:ARM, a label without '-'")
        if label in sides:
            parser.error(f"label {label!r} is given twice")
        sides[label] = Side(label, Path(folder), arm)
    test_sets = args.test_sets
    if test_sets is None:
        first = next(iter(sides.values()))
        extra = sorted({k for run in first.runs.values() for k in run.get("extra_tests", {})})
        test_sets = ["in-domain", *extra]
    rows = []
    for pair in args.pairs:
        arm, _, reference = pair.partition("-")
        if arm not in sides or reference not in sides:
            parser.error(f"--pairs {pair}: labels must be among {sorted(sides)}")
        rows += compare(sides[reference], sides[arm], test_sets)
    write_text_atomic(args.output, markdown(rows, sides))
    write_json_atomic(args.output.with_suffix(".json"), rows)
    print(markdown(rows, sides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
