import numpy as np

from nnunet_synth.lesions.real import extract_lesion_case, place_lesion_case


def test_extract_and_place_keeps_shape_inside_allowed_tissue():
    brain = np.zeros((30, 30, 30), bool)
    brain[3:27, 3:27, 3:27] = True
    seg = np.zeros(brain.shape, np.int8)
    seg[5:9, 5:9, 5:9] = 1           # component 1: 64 voxels near a corner
    seg[18:20, 18:21, 18:20] = 1     # component 2: 12 voxels
    case = extract_lesion_case("a", seg, brain)
    assert case is not None and len(case.components) == 2
    assert sorted(int(c.mask.sum()) for c in case.components) == [12, 64]

    allowed = np.zeros(brain.shape, bool)
    allowed[3:27, 3:27, 3:27] = True
    allowed[10:20, 10:20, 10:20] = False  # a "ventricle" the lesion must avoid
    placed = place_lesion_case(case, allowed, np.random.default_rng(0))
    assert placed.any()
    assert not (placed & ~allowed).any()
    assert 0.5 * 76 <= placed.sum() <= 76


def test_lesion_free_case_gives_none():
    assert extract_lesion_case("b", np.zeros((5, 5, 5)), np.ones((5, 5, 5), bool)) is None
