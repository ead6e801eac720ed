"""Spectral baselines (Frank et al. DCT, Durall et al. azimuthal spectrum): features, fitting, registry."""
import numpy as np
import pytest
import torch
from scipy.fft import idctn

from eval.baselines import BASELINES, azimuthal_average, create_baseline, cross_fit_scores, grey_square
from eval.metrics import auc_fast


def test_registry_lists_both_and_refuses_duplicates():
    assert BASELINES.names() == ["durall_spectrum", "frank_dct"]
    with pytest.raises(ValueError, match="already registered"):
        BASELINES.register("frank_dct")(object)
    with pytest.raises(KeyError, match="unknown baseline"):
        create_baseline("nope")


@pytest.mark.parametrize("name,dim", [("frank_dct", 28 * 28), ("durall_spectrum", 21)])  # radii 0..round(14 * sqrt 2)
def test_feature_shapes(name, dim, real_images):
    b = create_baseline(name, size=28)
    f = b.features(list(real_images[:5]))
    assert f.shape == (5, dim) and np.isfinite(f).all()


def test_frank_features_are_log_abs_orthonormal_dct():
    coeffs = np.zeros((8, 8))
    coeffs[0, 0], coeffs[3, 5] = 4.0, -2.0
    x = idctn(coeffs, norm="ortho")  # an image with exactly two DCT coefficients
    f = create_baseline("frank_dct", size=8).features_one(x).reshape(8, 8)
    assert f[0, 0] == pytest.approx(np.log(4.0)) and f[3, 5] == pytest.approx(np.log(2.0))
    assert f[1, 1] < np.log(1e-6)  # every other coefficient is (numerically) zero


def test_durall_features_rings_and_normalisation():
    a = np.zeros((9, 9))
    yy, xx = np.indices((9, 9))
    a[np.rint(np.hypot(yy - 4, xx - 4)) == 2] = 7.0
    avg = azimuthal_average(a)
    assert avg[2] == 7.0 and avg[0] == 0.0 and avg[3] == 0.0
    f = create_baseline("durall_spectrum", size=16).features_one(np.random.default_rng(0).random((16, 16)))
    assert f.min() == 0.0 and f.max() == 1.0


def test_grey_square_crops_large_images_at_native_resolution():
    img = torch.arange(3 * 40 * 50, dtype=torch.float32).reshape(3, 40, 50) / (3 * 40 * 50)
    g = grey_square(img, 28)
    assert g.shape == (28, 28)
    grey = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).numpy()
    assert np.allclose(g, grey[6:34, 11:39], atol=1e-6)  # centre crop, untouched pixels
    assert grey_square(torch.rand(1, 10, 12), 28).shape == (28, 28)  # small images are resized up


@pytest.mark.parametrize("name", ["frank_dct", "durall_spectrum"])
def test_baselines_separate_transposed_conv_fakes(name, real_images, fake_images):
    b = create_baseline(name, size=28, seed=0).fit(list(real_images[:200]), list(fake_images[:200]))
    r, f = b.score(list(real_images[300:400])), b.score(list(fake_images[300:400]))
    y = np.r_[np.zeros(100, int), np.ones(100, int)]
    assert auc_fast(y, np.r_[r, f]) > 0.95
    assert ((r >= 0) & (r <= 1)).all()


def test_baseline_errors():
    b = create_baseline("frank_dct")
    with pytest.raises(RuntimeError, match="fit"):
        b.score([torch.rand(1, 28, 28)])
    with pytest.raises(ValueError, match="at least 2 real and 2 fake"):
        b.fit([torch.rand(1, 28, 28)], [torch.rand(1, 28, 28)] * 3)


def test_cross_fit_scores_every_image_out_of_fold(real_images, fake_images):
    imgs = list(real_images[:40]) + list(fake_images[:40])
    labels = [0] * 40 + [1] * 40
    s1 = cross_fit_scores("durall_spectrum", imgs, labels, size=28, folds=2, seed=1)
    s2 = cross_fit_scores("durall_spectrum", imgs, labels, size=28, folds=2, seed=1)
    assert s1.shape == (80,) and np.array_equal(s1, s2)  # seeded
    assert auc_fast(np.asarray(labels), s1) > 0.9
    with pytest.raises(ValueError, match="at least 4 real"):
        cross_fit_scores("frank_dct", imgs[:3] + imgs[40:], [0] * 3 + [1] * 40)
