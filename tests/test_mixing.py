import numpy as np
import pytest

from nnunet_synth.feeding.mixing import SynthMixDataset, is_synthetic_key, synthetic_count


class _Real:
    identifiers = ["a", "b", "c"]

    def load_case(self, key):
        return ("real", key), None, None, {}


class _Case:
    def __init__(self):
        self.data, self.seg, self.properties = "synthetic", None, {"class_locations": {}}

    def as_load_case(self):
        return self.data, self.seg, None, self.properties


class _Supply:
    def take(self):
        return _Case()


@pytest.mark.parametrize("fraction,batch", [(0.5, 2), (0.25, 4), (0.75, 4), (1.0, 2), (0.0, 3)])
def test_exact_integer_share_per_batch(fraction, batch):
    ds = SynthMixDataset(_Real(), _Supply(), fraction)
    np.random.seed(0)
    for _ in range(50):
        keys = ds.draw_batch_keys(batch)
        assert len(keys) == batch
        assert sum(is_synthetic_key(k) for k in keys) == round(batch * fraction)


def test_fractional_share_is_met_on_average():
    rng = np.random.RandomState(0)
    counts = [synthetic_count(2, 0.3, rng) for _ in range(4000)]
    assert set(counts) <= {0, 1}
    assert abs(np.mean(counts) / 2 - 0.3) < 0.02


def test_synthetic_keys_are_generated_real_keys_are_loaded():
    ds = SynthMixDataset(_Real(), _Supply(), 0.5)
    assert ds.load_case("b")[0] == ("real", "b")
    assert ds.load_case("nnsynth_1_0000001")[0] == "synthetic"
    assert ds.synthetic_served == 1


def test_fraction_out_of_range_is_refused():
    with pytest.raises(ValueError, match="fraction"):
        SynthMixDataset(_Real(), _Supply(), 1.5)
