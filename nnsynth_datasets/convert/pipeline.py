"""The shared conversion run: check everything, write into a staging folder, rename, summarise.

Order matters for the guarantees of issue 3: duplicate ids and a taken dataset id are known before
any file is read; every file is read once in the workers, which write a case only while no problem
has been seen; any problem (without --skip-invalid) removes the staging folder, so nnUNet_raw is
left exactly as it was.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from tqdm import tqdm

from nnsynth_datasets.convert.cases import Case, Discovery, Problem
from nnsynth_datasets.convert.summary import build_summary, format_summary
from nnsynth_datasets.convert.validation import check_dataset_id, check_duplicates, first_file
from nnsynth_datasets.convert.writer import CaseResult, Job, convert_case
from nnsynth_datasets.workers import die_with_parent
from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import write_json_atomic

SUMMARY_FILE = "conversion_summary.json"


@dataclass(frozen=True)
class ConvertOptions:
    dataset_id: int
    name: str
    overwrite: bool = False
    skip_invalid: bool = False
    binarize: bool = False
    num_processes: int = 1
    progress: bool = True
    splits: bool = True


class _Flag:
    """In-process stand-in for multiprocessing.Event."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


_WORKER_STOP = None


def _init_worker(parent: int, stop) -> None:
    """Workers share the stop flag and leave the cores to each other (no ITK thread pool each)."""
    global _WORKER_STOP
    die_with_parent(parent)
    _WORKER_STOP = stop
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _worker(case: Case, job: Job) -> CaseResult:
    return convert_case(case, job, _WORKER_STOP)


def run_cases(cases: list[Case], job: Job, num_processes: int, stop_on_problem: bool,
              progress: bool = True) -> list[CaseResult]:
    """convert_case over all cases (in worker processes when num_processes > 1), sorted by case id."""
    bar = tqdm(total=len(cases), desc="convert", unit="case", disable=None if progress else True,
               file=sys.stderr)
    results = []
    with bar:
        if num_processes <= 1 or len(cases) <= 1:
            stop = _Flag()
            for case in cases:
                results.append(convert_case(case, job, stop))
                if results[-1].problems and stop_on_problem:
                    stop.set()
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork after SimpleITK started its threads
            stop = ctx.Event()
            with ProcessPoolExecutor(max_workers=min(num_processes, len(cases)), mp_context=ctx,
                                     initializer=_init_worker, initargs=(os.getpid(), stop)) as pool:
                futures = [pool.submit(_worker, case, job) for case in cases]
                for future in as_completed(futures):
                    results.append(future.result())
                    if results[-1].problems and stop_on_problem:
                        stop.set()
                    bar.update()
    return sorted(results, key=lambda r: r.case_id)


def _problem_report(problems: list[Problem], n_cases: int) -> str:
    lines = [f"{len(problems)} problem(s) in the input ({n_cases} case(s) checked); nothing was written. "
             "Fix them, or pass --skip-invalid to convert only the valid cases:"]
    lines.extend(f"  {p}" for p in problems)
    return "\n".join(lines)


def _splits(good: list[CaseResult], folder_name: str, enabled: bool) -> tuple[list | None, dict]:
    from nnsynth_datasets.splits import DEFAULT_FOLDS, grouped_kfold
    from nnunet_synth.nnunet_io.folders import env_dir
    from nnunet_synth.nnunet_io.folds import splits_file

    training = {r.case_id: r.patient_id for r in good if r.training}
    n_patients = len(set(training.values()))
    target = splits_file(env_dir("nnUNet_preprocessed") / folder_name)
    if enabled and n_patients >= DEFAULT_FOLDS:
        return grouped_kfold(training), {"splits_file": str(target)}
    note = ("disabled (--no-splits): nnU-Net makes its own per-case split" if not enabled else
            f"not written: {n_patients} patient(s) cannot fill {DEFAULT_FOLDS} folds")
    if target.is_file():
        note += f"; {target} is left from before and may not match these cases"
    return None, {"splits_note": note}


def run_conversion(discovery: Discovery, options: ConvertOptions) -> dict:
    """Convert a discovered cohort into $nnUNet_raw/DatasetXXX_name; returns the summary."""
    from nnsynth_datasets.raw_dataset import staged_dataset, write_dataset_json
    from nnunet_synth.nnunet_io.folders import dataset_folder_name, env_dir
    from nnunet_synth.nnunet_io.folds import write_splits

    folder_name = dataset_folder_name(options.dataset_id, options.name)  # id and name checked before any work
    if not discovery.cases and not discovery.problems:
        raise NNSynthError(f"no {discovery.cohort} cases found in {discovery.source}")
    start = time.perf_counter()
    duplicates = check_duplicates(discovery.cases)
    duplicate_ids = {p.case_id for p in duplicates}
    runnable = [c for c in discovery.cases if c.case_id not in duplicate_ids]
    known = list(discovery.problems) + duplicates
    fatal = check_dataset_id(options.dataset_id, options.overwrite)
    if fatal or (known and not options.skip_invalid):
        results = run_cases(runnable, Job(None, options.binarize), options.num_processes, False, options.progress)
        problems = fatal + known + [p for r in results for p in r.problems]
        raise NNSynthError(_problem_report(problems, len(discovery.cases)))

    with staged_dataset(options.dataset_id, options.name, options.overwrite) as stage:
        job = Job(stage, options.binarize)
        results = run_cases(runnable, job, options.num_processes, not options.skip_invalid, options.progress)
        bad = [r for r in results if r.problems]
        if bad and not options.skip_invalid:
            problems = known + [p for r in bad for p in r.problems]
            raise NNSynthError(_problem_report(problems, len(discovery.cases)))
        good = [r for r in results if not r.problems]
        if not any(r.training for r in good):
            raise NNSynthError(f"no valid training case in {discovery.source}; nothing was written")
        skipped = bad + [CaseResult(c.case_id, c.patient_id, c.training,
                                    [p for p in duplicates if p.file == first_file(c)])
                         for c in discovery.cases if c.case_id in duplicate_ids]
        splits, split_info = _splits(good, folder_name, options.splits)
        num_training = sum(r.training for r in good)
        write_dataset_json(stage, dict(enumerate(discovery.channel_names)), num_training,
                           dataset_name=options.name,
                           extra={"description": f"converted from {discovery.cohort} ({discovery.source}) "
                                                 "by nnsynth convert"})
        summary = build_summary(good, skipped, dataset=folder_name, cohort=discovery.cohort,
                                source=str(discovery.source), channels=discovery.channel_names,
                                layout_problems=[str(p) for p in discovery.problems], **split_info,
                                seconds=round(time.perf_counter() - start, 2))
        write_json_atomic(stage / SUMMARY_FILE, summary)
    if splits is not None:
        write_splits(env_dir("nnUNet_preprocessed") / folder_name, splits)
    print(format_summary(summary))
    return summary
