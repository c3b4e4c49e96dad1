"""`nnsynth labelmaps`: anatomical label maps (CSF, GM, WM, lesion) for the cases of a raw dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_synth import arguments as arg

DESCRIPTION = """\
Write labelmapsTr/CASE.nii.gz (uint8, on the grid of the images): background, CSF, grey and white
matter from a Gaussian mixture on one channel inside a threshold+morphology brain mask (intersected
over all channels), lesion voxels from labelsTr as the lesion class; or import FreeSurfer, SynthSeg
or FastSurfer segmentations with --from and --mapping. Adds "anatomical_labels" to dataset.json
when missing. The folder is written under a temporary name and renamed at the end."""

EPILOG = """\
examples:
  nnsynth labelmaps -d 501                                   # estimate from the best channel
  nnsynth labelmaps -d 501 --channel FLAIR --overwrite
  nnsynth labelmaps -d 501 --from /data/synthseg --mapping freesurfer --pattern '{case}_synthseg.nii.gz'
  nnsynth labelmaps -d 990 --output /tmp/est --reference $nnUNet_raw/Dataset990_NNSynthDemo/labelmapsTr

A mapping file is JSON {source label: class name}; keys may be ranges ("1000-1035") and "*" (every
other label). Class names are those of dataset.json "anatomical_labels" (default: background, csf,
gray_matter, white_matter, lesion). --mapping freesurfer is the built-in aseg/aparc+aseg mapping
(also right for SynthSeg and FastSurfer)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "labelmaps", help="anatomical label maps for the cases of a raw dataset (labelmapsTr/)",
        description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-d", "--dataset-id", type=arg.DATASET_ID, required=True, help="nnU-Net dataset id")
    p.add_argument("--channel", metavar="NAME",
                   help="channel name (or index) to estimate from; default: best tissue contrast among "
                   "T1 > FLAIR > T2 > ADC > DWI")
    p.add_argument("--contrast", choices=("t1", "flair", "t2", "dwi", "adc"),
                   help="contrast of that channel when its name does not tell")
    p.add_argument("--smooth", type=arg.number(0, 10), default=0.7, metavar="VOXELS",
                   help="Gaussian smoothing (sigma, voxels) of the channel inside the brain before the "
                   "mixture (default: %(default)s)")
    p.add_argument("--from", dest="source", type=Path, metavar="DIR",
                   help="folder of existing segmentations to import instead of estimating")
    p.add_argument("--mapping", metavar="FILE", help="JSON label mapping for --from, or 'freesurfer'")
    p.add_argument("--pattern", metavar="PATTERN",
                   help="file name of a case's segmentation in --from, with {case} (default: tries "
                   "{case}.nii.gz, {case}_synthseg.nii.gz, {case}/mri/aseg.mgz, ...)")
    p.add_argument("--output", type=Path, metavar="DIR",
                   help="write the training maps here instead of the dataset's labelmapsTr/")
    p.add_argument("--with-test", action="store_true", help="also write labelmapsTs/ for imagesTs/")
    p.add_argument("--overwrite", action="store_true", help="replace existing label maps")
    p.add_argument("--reference", type=Path, metavar="DIR",
                   help="known label maps (same case names) to report Dice per tissue class against")
    p.add_argument("-np", "--num-processes", type=arg.integer(1, 64), default=1, help="worker processes (default: 1)")
    p.set_defaults(func=run)


def _mapping(value: str | None) -> dict | None:
    from nnsynth_datasets.labelmaps.imported import FREESURFER_MAPPING
    from nnunet_synth.errors import NNSynthError

    if value is None:
        return None
    if value.lower() == "freesurfer":
        return dict(FREESURFER_MAPPING)
    try:
        content = json.loads(Path(value).read_text())
    except (OSError, ValueError) as exc:
        raise NNSynthError(f"{value}: cannot read the label mapping ({exc})") from exc
    if not isinstance(content, dict):
        raise NNSynthError(f"{value}: the label mapping must be a JSON object {{source label: class name}}")
    return content


def run(args: argparse.Namespace) -> int:
    from nnsynth_datasets.labelmaps.agreement import format_agreement
    from nnsynth_datasets.labelmaps.make import make_labelmaps

    result = make_labelmaps(args.dataset_id, channel=args.channel, contrast=args.contrast, source=args.source,
                            mapping=_mapping(args.mapping), pattern=args.pattern, output=args.output,
                            overwrite=args.overwrite, include_test=args.with_test,
                            num_processes=args.num_processes, smooth_voxels=args.smooth,
                            reference=args.reference)
    how = (f"imported from {result['source']}" if result["source"]
           else f"estimated from {result['channel']} ({result['contrast']})")
    print(f"{result['dataset']}: {result['cases']} label map(s) {how} -> {', '.join(result['outputs'])}")
    if "agreement" in result:
        print(format_agreement(result["agreement"]))
    return 0
