import numpy as np

from nnunet_synth.renderers import GaussianMixtureConfig, GaussianMixtureRenderer


def _cases(n=4, seed=0):
    rng = np.random.default_rng(seed)
    lm = np.zeros((20, 20, 20), np.int16)
    lm[4:16, 4:16, 4:16] = 2
    lm[8:12, 8:12, 8:12] = 3
    lm[0:2] = -1
    means = {-1: (0.0, 0.0), 0: (-1.0, 1.0), 2: (0.5, -0.2), 3: (2.0, -1.5)}
    out = []
    for _ in range(n):
        img = np.zeros((2, *lm.shape), np.float32)
        for k, m in means.items():
            for c in range(2):
                img[c][lm == k] = m[c] + rng.normal(0, 0.1, (lm == k).sum())
        out.append((img, lm))
    return out, means


def test_fit_recovers_class_means_and_noise():
    cases, means = _cases()
    r = GaussianMixtureRenderer.fit(cases)
    assert r.num_channels == 2
    for k, m in means.items():
        np.testing.assert_allclose(r.classes[k].mean, m, atol=0.02)
    cov = np.asarray(r.classes[2].covariance)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), [0.1, 0.1], rtol=0.1)


def test_render_reproduces_statistics_and_is_seeded():
    cases, means = _cases()
    r = GaussianMixtureRenderer.fit(cases, config=GaussianMixtureConfig(bias_strength=0.0, blur_sigma=0.0))
    lm = cases[0][1]
    a = r.render(lm, np.random.default_rng(1))
    b = r.render(lm, np.random.default_rng(1))
    c = r.render(lm, np.random.default_rng(2))
    assert a.shape == (2, *lm.shape) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    inner = a[:, 9:11, 9:11, 9:11]  # deep inside class 3
    np.testing.assert_allclose(inner.mean(axis=(1, 2, 3)), means[3], atol=0.25)


def test_round_trip_dict():
    cases, _ = _cases(2)
    r = GaussianMixtureRenderer.fit(cases)
    r2 = GaussianMixtureRenderer.from_dict(r.to_dict())
    lm = cases[0][1]
    np.testing.assert_array_equal(r.render(lm, np.random.default_rng(0)), r2.render(lm, np.random.default_rng(0)))
