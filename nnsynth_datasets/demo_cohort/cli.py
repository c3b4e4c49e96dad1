"""`nnsynth demo-cohort`: write the offline synthetic stroke cohort into $nnUNet_raw."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
Make a synthetic acute-stroke cohort in nnU-Net's raw format, offline, from the MNI152 2009
template that nilearn ships. Every subject has its own anatomy (head pose and size, a smooth
non-linear warp, ventricle size), 0-3 infarcts (MCA/ACA/PCA/cerebellar territories or small deep
lacunes; about a fifth of the subjects are lesion-free; total volume log-normal around 6 ml like
ISLES 2022), and unlabelled look-alikes (T2 shine-through, chronic infarcts, susceptibility
artefacts). Two channels: DWI (b=1000, lesions bright) and ADC (10^-6 mm^2/s, lesions dark), with
partial volume, coil bias and Rician noise.

Writes $nnUNet_raw/DatasetXXX_<name>/: dataset.json, imagesTr/ labelsTr/ imagesTs/ labelsTs/,
labelmapsTr/ and labelmapsTs/ (anatomical label maps: 0 background, 1 CSF, 2 grey matter,
3 white matter, 4 lesion), demo_cohort.json (per-subject facts) and demo_cohort_preview.png.
The same --seed and --spacing always give the same files, whatever -np."""

EPILOG = """\
examples:
  nnsynth demo-cohort --dataset-id 990                       # 40 subjects at 3 mm
  nnsynth demo-cohort --dataset-id 992 --subjects 80 --test-fraction 0.5 --variants scanner-b thick-slice
  nnsynth demo-cohort --dataset-id 991 --subjects 8 --spacing 4 -np 2   # tiny, for tests
  nnUNetv2_plan_and_preprocess -d 990 -c 3d_fullres --verify_dataset_integrity"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo-cohort", help="write an offline synthetic DWI/ADC stroke cohort (MNI152-based)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-id", "-d", type=int, required=True, metavar="ID",
                        help="nnU-Net dataset id (1-999) of the new DatasetXXX_<name> folder")
    parser.add_argument("--subjects", type=int, default=40, metavar="N",
                        help="number of subjects, training and test together (default: 40, at least 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--spacing", type=float, nargs="+", default=[3.0], metavar="MM",
                        help="voxel spacing in mm, one value (isotropic) or three (x y z); "
                        "default: 3, as `nnsynth demo` and the embedded generators. Use 4-6 for a tiny cohort")
    parser.add_argument("--test-fraction", type=float, default=0.25, metavar="F",
                        help="share of subjects held out in imagesTs/labelsTs (default: 0.25)")
    parser.add_argument("--name", default="NNSynthDemo",
                        help="dataset name after DatasetXXX_ (default: NNSynthDemo)")
    parser.add_argument("--variants", nargs="+", default=[], metavar="NAME",
                        help="out-of-domain test sets: the test subjects again, imaged another way, in "
                        "test_<NAME>/{imagesTs,labelsTs}: scanner-b (another site's contrast, gain, SNR, bias), "
                        "thick-slice (slices twice as thick)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset that uses this id")
    parser.add_argument("-np", "--num-processes", type=int, default=1, metavar="N", dest="num_processes",
                        help="worker processes (default: 1); the output does not depend on it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nnsynth_datasets.demo_cohort.cohort import FACTS_FILE, make_demo_cohort, summarize

    folder = make_demo_cohort(args.dataset_id, subjects=args.subjects, seed=args.seed,
                              spacing=args.spacing, test_fraction=args.test_fraction, name=args.name,
                              overwrite=args.overwrite, num_processes=args.num_processes,
                              variants=args.variants)
    print(f"wrote {folder}")
    print(summarize(json.loads((folder / FACTS_FILE).read_text())))
    return 0
