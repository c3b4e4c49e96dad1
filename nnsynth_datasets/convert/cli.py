"""`nnsynth convert {isles22,atlas2,isles15,folder}`: cohorts -> nnU-Net raw datasets."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nnunet_synth import arguments as arg

_NP_DEFAULT = max(1, min(4, os.cpu_count() or 1))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert a stroke cohort or image/mask folders into an nnU-Net raw dataset",
        description="Convert a cohort into $nnUNet_raw/DatasetXXX_Name. Every input file is checked "
        "first; any problem is reported (all of them, each with its file) and nothing is written, "
        "unless --skip-invalid. A summary is printed and saved as conversion_summary.json; "
        "patient-grouped 5-fold splits go to $nnUNet_preprocessed/DatasetXXX_Name/splits_final.json.")
    cohorts = parser.add_subparsers(dest="cohort", metavar="COHORT", required=True)

    p = cohorts.add_parser("isles22", help="ISLES 2022 (Zenodo BIDS or challenge rawdata/ layout)",
                           description="ISLES 2022: SRC holds sub-*/ (or rawdata/sub-*/) and derivatives/. "
                           "FLAIR is resampled onto the DWI grid (linear interpolation).")
    p.add_argument("src", type=Path, help="the ISLES-2022 folder (or a folder containing it)")
    p.add_argument("--channels", nargs="+", default=["dwi", "adc", "flair"], metavar="NAME",
                   help="channels in output order, among dwi adc flair (default: %(default)s)")
    _common(p, "ISLES22")
    p.set_defaults(func=_isles22)

    p = cohorts.add_parser("atlas2", help="ATLAS v2.0 (Training/ with masks, Testing/ -> imagesTs)",
                           description="ATLAS v2.0: SRC holds Training/R*/sub-*/ses-*/anat/ "
                           "(and optionally Testing/).")
    p.add_argument("src", type=Path, help="the ATLAS_2 folder (or a folder containing it)")
    _common(p, "ATLAS2")
    p.set_defaults(func=_atlas2)

    p = cohorts.add_parser("isles15", help="ISLES 2015 SISS (.nii, *OT* masks)",
                           description="ISLES 2015 SISS: SRC holds Training/<n>/VSD.Brain.*.MR_*/ and "
                           "*OT* mask folders, possibly below an extra folder such as SISS2015/.")
    p.add_argument("src", type=Path, help="the SISS folder (or a folder containing it)")
    p.add_argument("--channels", nargs="+", default=["flair", "dwi", "t1", "t2"], metavar="NAME",
                   help="sequences (the MR_<name> part, any case) in output order (default: %(default)s)")
    _common(p, "ISLES15")
    p.set_defaults(func=_isles15)

    p = cohorts.add_parser("folder", help="image/mask pairs matched by case id",
                           description="Images named CASE_0000.nii.gz, CASE_0001.nii.gz, ... (several "
                           "channels) or CASE.nii.gz (one channel); masks named CASE.nii.gz.")
    p.add_argument("--images", type=Path, required=True, help="folder of images")
    p.add_argument("--labels", type=Path, required=True, help="folder of lesion masks")
    p.add_argument("--channel-names", nargs="+", metavar="NAME",
                   help="one name per channel for dataset.json (default: image / image0 image1 ...)")
    p.add_argument("--patient-pattern", metavar="REGEX",
                   help="regular expression whose first group is the patient id in a case id, e.g. "
                   "'^(sub-[^_]+)' (default: every case is its own patient)")
    _common(p, "Folder")
    p.set_defaults(func=_folder)


def _common(p: argparse.ArgumentParser, default_name: str) -> None:
    p.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id")
    p.add_argument("--name", default=default_name, type=arg.name("--name"), help="dataset name (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset that uses this id")
    p.add_argument("--skip-invalid", action="store_true",
                   help="convert the valid cases and list the skipped ones instead of stopping")
    p.add_argument("--binarize", action="store_true",
                   help="accept masks with values other than 0/1; every non-zero voxel becomes lesion")
    p.add_argument("--no-splits", action="store_true",
                   help="do not write the patient-grouped splits_final.json")
    p.add_argument("-np", "--num-processes", type=arg.integer(1, 64), default=_NP_DEFAULT,
                   help="worker processes (default: %(default)s)")


def _run(args: argparse.Namespace, discovery) -> int:
    from nnsynth_datasets.convert.pipeline import ConvertOptions, run_conversion

    options = ConvertOptions(args.dataset_id, args.name, overwrite=args.overwrite,
                             skip_invalid=args.skip_invalid, binarize=args.binarize,
                             num_processes=args.num_processes, splits=not args.no_splits)
    run_conversion(discovery, options)
    return 0


def _isles22(args: argparse.Namespace) -> int:
    from nnsynth_datasets.convert import isles22

    return _run(args, isles22.discover(args.src, args.channels))


def _atlas2(args: argparse.Namespace) -> int:
    from nnsynth_datasets.convert import atlas2

    return _run(args, atlas2.discover(args.src))


def _isles15(args: argparse.Namespace) -> int:
    from nnsynth_datasets.convert import isles15

    return _run(args, isles15.discover(args.src, args.channels))


def _folder(args: argparse.Namespace) -> int:
    from nnsynth_datasets.convert import folder

    return _run(args, folder.discover(args.images, args.labels, args.channel_names, args.patient_pattern))
