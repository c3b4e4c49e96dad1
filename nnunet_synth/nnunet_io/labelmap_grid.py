"""Anatomical label maps brought onto nnU-Net's preprocessed grid, with nnU-Net's own preprocessor.

The generators work on nnU-Net's preprocessed grid (transposed, cropped to the non-zero box,
resampled to the target spacing). Raw label maps (``labelmapsTr/CASE.nii.gz``) are pushed through
nnU-Net's preprocessor as if they were segmentations, so they land on exactly the voxel grid of the
preprocessed images (-1 outside nnU-Net's crop mask). Results are cached next to the preprocessed
data (``nnsynth_labelmaps_<data identifier>/CASE.npy``) and shared by the synthesis engine, the
translator training and the generator reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_synth.errors import NNSynthError
from nnunet_synth.nnunet_io.atomic import save_npy_atomic
from nnunet_synth.nnunet_io.preprocessed import PreprocessedDataset

LABELMAP_FOLDER = "labelmapsTr"


def cache_folder(pre: PreprocessedDataset) -> Path:
    return pre.root / f"nnsynth_labelmaps_{pre.configuration_manager.data_identifier}"


def labelmap_file(raw_dataset: Path, case_id: str, file_ending: str) -> Path:
    return Path(raw_dataset) / LABELMAP_FOLDER / f"{case_id}{file_ending}"


def preprocessed_labelmaps(pre: PreprocessedDataset, case_ids: list[str], verbose: bool = False,
                           missing_ok: bool = False) -> dict[str, np.ndarray]:
    """Label maps of case_ids on the preprocessed grid, (1, X, Y, Z) int16 with -1 outside the crop mask.

    ``missing_ok``: leave out cases without a raw label map instead of refusing (reports that fall back
    to the nonzero mask there).
    """
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    cache = cache_folder(pre)
    missing = [c for c in case_ids if not (cache / f"{c}.npy").is_file()]
    if missing:
        raw = pre.raw
        ending = pre.dataset_json["file_ending"]
        absent = [c for c in missing if not labelmap_file(raw, c, ending).is_file()]
        if absent and not missing_ok:
            raise NNSynthError(f"anatomical label maps missing for {len(absent)} case(s), e.g. "
                               f"{labelmap_file(raw, absent[0], ending)}; make them with `nnsynth labelmaps -d "
                               f"{pre.dataset_id}` (or use the demo cohort)")
        todo = [c for c in missing if c not in set(absent)]
        if todo:
            cache.mkdir(parents=True, exist_ok=True)
            files = get_filenames_of_train_images_and_targets(str(raw), pre.dataset_json)
            config = pre.configuration_manager
            preprocessor = config.preprocessor_class(verbose=verbose)
            reader = pre.plans_manager.image_reader_writer_class()
            for case in todo:
                data, props = reader.read_images(files[case]["images"])
                labelmap, _ = reader.read_seg(str(labelmap_file(raw, case, ending)))
                _, lm, _ = preprocessor.run_case_npy(data, labelmap, props, pre.plans_manager, config,
                                                     pre.dataset_json)
                save_npy_atomic(cache / f"{case}.npy", lm.astype(np.int16))
    return {case: np.load(cache / f"{case}.npy") for case in case_ids if (cache / f"{case}.npy").is_file()}
