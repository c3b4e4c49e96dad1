"""Which CPU protocol decides the 10-real-case comparison soonest: CI half-width per machine hour.

Each candidate protocol (a budget, a configuration, ...) is one `nnsynth experiment` folder on the same
subsamples. For a reference arm and a synthetic arm this reads the folder's finished runs and reports:

- the measured paired Dice difference and its 95% CI half-width (the report's hierarchical bootstrap);
- the training sd: sd over seeds of the per-seed mean difference (what the CI shrinks with);
- machine hours per seed (train + predict + score of both arms, divided by the runs trained side by side),
  from the median run: timings are wall clock, and a run paused while something else had the machine
  (``kill -STOP`` during a CI check) would otherwise bill its pause to the protocol;
- the seeds, and hours, a 95% t-interval needs for a half-width of ``--target`` at that training sd
  (projection: n with t(0.975, n-1) * sd / sqrt(n) <= target; the bootstrap's test-case term is small
  next to it, see the report's test sd);
- the reference arm's own mean Dice (has the protocol converged?).

    python scripts/protocol_table.py 60x25=docs/experiment_evidence 120x25=docs/experiment_protocol/epochs120 \\
        --arm nnUNetTrainerSynthInpaint -o docs/experiment_protocol/protocols.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from scipy import stats

from nnunet_synth.nnunet_io.atomic import write_json_atomic, write_text_atomic


def seeds_for_half_width(sd: float, target: float, max_seeds: int = 200) -> int | None:
    """Smallest number of seeds whose 95% t-interval of the mean difference is at most ``target`` wide."""
    for n in range(2, max_seeds + 1):
        if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) <= target:
            return n
    return None


def run_hours(run: dict, jobs: int) -> float:
    """Machine hours of one run: its timed steps, shared with the other runs trained side by side."""
    return sum(run.get("timings_seconds", {}).values()) / 3600 / jobs


def candidate(label: str, folder: Path, reference: str, arm: str, n_real: int, target: float, jobs: int) -> dict:
    results_file = folder / "results.json"
    if not results_file.is_file():
        raise SystemExit(f"{results_file}: missing (run `nnsynth experiment ... --report-only` on {folder})")
    results = json.loads(results_file.read_text())
    runs = [r for r in results["runs"] if r["n_real"] == n_real]
    by_key = {(r["seed"], r["arm"]): r for r in runs}
    seeds = sorted(s for s, a in by_key if a == arm and (s, reference) in by_key)
    if not seeds:
        raise SystemExit(f"{folder}: no seed with both {reference} and {arm} finished at {n_real} real cases")
    diffs = [by_key[(s, arm)]["dice"] - by_key[(s, reference)]["dice"] for s in seeds]
    refs = [by_key[(s, reference)]["dice"] for s in seeds]
    paired = next((p for p in results["paired"] if p["arm"] == arm and p["n_real"] == n_real
                   and p["metric"] == "dice"), None)
    hours = statistics.median(run_hours(by_key[(s, a)], jobs) for s in seeds for a in (reference, arm)) * 2
    sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
    need = seeds_for_half_width(sd, target) if len(diffs) > 1 else None
    return {"protocol": label, "folder": str(folder), "seeds": len(seeds), "difference": statistics.mean(diffs),
            "ci_low": paired["ci_low"] if paired else None, "ci_high": paired["ci_high"] if paired else None,
            "half_width": (paired["ci_high"] - paired["ci_low"]) / 2 if paired else None,
            "training_sd": sd, "test_sd": paired["test_sd"] if paired else None,
            "reference_dice": statistics.mean(refs),
            "reference_dice_sd": statistics.stdev(refs) if len(refs) > 1 else None,
            "hours_per_seed": hours, "seeds_for_target": need,
            "hours_for_target": need * hours if need else None}


def markdown(rows: list[dict], reference: str, arm: str, target: float) -> str:
    def f(v, fmt):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    head = (f"{arm} - {reference}, in-domain Dice. Hours are machine hours on this 2-core CPU (both arms, "
            f"runs side by side); 'seeds for +/-{target}' is a t-interval projection from the measured training sd.\n\n"
            "| protocol | seeds | difference [95% CI] | half-width | training sd | test sd | reference Dice | "
            f"hours per seed | seeds for +/-{target} | hours for +/-{target} |\n" + "|---" * 10 + "|\n")
    body = "".join(
        f"| {r['protocol']} | {r['seeds']} | {r['difference']:+.3f} "
        f"[{f(r['ci_low'], '+.3f')}, {f(r['ci_high'], '+.3f')}] | {f(r['half_width'], '.3f')} | "
        f"{f(r['training_sd'], '.3f')} | {f(r['test_sd'], '.3f')} | {r['reference_dice']:.3f} "
        f"+/- {f(r['reference_dice_sd'], '.3f')} | {r['hours_per_seed']:.2f} | {f(r['seeds_for_target'], 'd')} | "
        f"{f(r['hours_for_target'], '.1f')} |\n" for r in rows)
    return head + body


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidates", nargs="+", metavar="LABEL=FOLDER", help="protocol label and experiment folder")
    p.add_argument("--reference", default="real")
    p.add_argument("--arm", required=True, help="the synthetic arm compared with the reference")
    p.add_argument("--real-cases", type=int, default=10)
    p.add_argument("--target", type=float, default=0.04, help="CI half-width to reach (default 0.04 Dice)")
    p.add_argument("--jobs", type=int, default=2, help="runs trained side by side in the experiments (default 2)")
    p.add_argument("-o", "--output", type=Path, default=None, help="write the table here (.md) and as .json")
    args = p.parse_args()
    rows = []
    for spec in args.candidates:
        label, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"{spec}: give LABEL=FOLDER")
        rows.append(candidate(label, Path(folder), args.reference, args.arm, args.real_cases, args.target, args.jobs))
    text = markdown(rows, args.reference, args.arm, args.target)
    print(text)
    if args.output:
        write_text_atomic(args.output, text)
        write_json_atomic(args.output.with_suffix(".json"), rows)


if __name__ == "__main__":
    main()
