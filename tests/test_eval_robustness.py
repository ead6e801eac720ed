"""Robustness perturbations and the matrix of AUC / accuracy / verdict flips."""
import numpy as np
import pytest
import torch

from eval.metrics import MetricError
from eval.robustness import (
    DEFAULT_PERTURBATIONS,
    PERTURBATIONS,
    downscale,
    evaluate_robustness,
    gaussian_blur,
    jpeg,
    perturb,
)


def test_registry_holds_the_issue_perturbations():
    assert set(DEFAULT_PERTURBATIONS) == set(PERTURBATIONS.names())
    assert {"jpeg_q90", "jpeg_q75", "jpeg_q50", "blur_s1", "blur_s2", "downscale_0_5", "noise_s0_05"} == set(
        DEFAULT_PERTURBATIONS)


@pytest.mark.parametrize("name", DEFAULT_PERTURBATIONS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 33, 20)])
def test_perturbations_keep_shape_and_range(name, shape):
    img = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    out = perturb(name, [img], seed=0)[0]
    assert out.shape == img.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out, img)


def test_jpeg_quality_orders_the_error(real_images):
    img = real_images[0]
    errs = [float((jpeg(img, q) - img).abs().mean()) for q in (90, 75, 50)]
    assert 0 < errs[0] < errs[1] < errs[2] < 0.1


def test_blur_and_downscale_properties():
    flat = torch.full((1, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    assert torch.allclose(downscale(flat, 0.5), flat, atol=1e-6)
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None]) % 2).float().unsqueeze(0)
    assert gaussian_blur(checker, 1.0).std() < 0.1 * checker.std()
    assert downscale(checker, 0.5).std() < 0.2 * checker.std()


def test_noise_is_seeded():
    img = torch.full((1, 8, 8), 0.5)
    a, b, c = (perturb("noise_s0_05", [img], seed=s)[0] for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float((a - img).std()) - 0.05) < 0.02


def _brightness_score(images):
    """A 'detector' whose P(fake) is the mean brightness: every number below is predictable."""
    return np.array([float(im.mean()) for im in images])


def test_matrix_with_a_predictable_score_function():
    real = [torch.full((1, 16, 16), v) for v in (0.1, 0.2, 0.3, 0.45)]
    fake = [torch.full((1, 16, 16), v) for v in (0.55, 0.7, 0.9)]
    res = evaluate_robustness(_brightness_score, real, {"gen": fake}, threshold=0.5,
                              perturbations=("blur_s1", "downscale_0_5", "noise_s0_05"), progress=False)
    clean = res.row("clean")
    assert (clean.auc, clean.accuracy, clean.flip_rate) == (1.0, 1.0, 0.0)
    # flat images are unchanged by blur and resizing: same AUC, nothing flips
    for p in ("blur_s1", "downscale_0_5"):
        r = res.row(p)
        assert (r.auc, r.accuracy, r.flip_rate) == (1.0, 1.0, 0.0)
        assert r.auc_per_set == {"gen": 1.0}
    # zero-mean noise moves brightness by ~0.05/16 at most: still nothing crosses 0.5
    assert res.row("noise_s0_05").flip_rate == 0.0
    assert [r.perturbation for r in res.rows] == ["clean", "blur_s1", "downscale_0_5", "noise_s0_05"]


def test_flip_rate_counts_verdict_changes():
    # flat images; the score adds 0.02 to any image that is not flat, so noise pushes the real at 0.49 over
    real = [torch.full((1, 8, 8), 0.2), torch.full((1, 8, 8), 0.49)]
    fake = [torch.full((1, 8, 8), 0.8), torch.full((1, 8, 8), 0.51)]

    def score(images):
        return np.array([float(im.mean()) + (0.02 if float(im.max() - im.min()) > 0 else 0.0) for im in images])

    res = evaluate_robustness(score, real, {"g": fake}, threshold=0.5, perturbations=("noise_s0_05",),
                              progress=False)
    r = res.row("noise_s0_05")
    # noise makes every image non-flat: +0.02 -> the real at 0.49 (+/- noise mean) crosses to fake
    assert r.flip_rate_real == 0.5 and r.flip_rate_fake == 0.0 and r.flip_rate == 0.25
    assert r.accuracy == 0.75


def test_errors():
    with pytest.raises(MetricError, match="needs real images"):
        evaluate_robustness(_brightness_score, [], {"g": [torch.zeros(1, 4, 4)]}, 0.5)
    with pytest.raises(KeyError, match="unknown perturbation"):
        evaluate_robustness(_brightness_score, [torch.zeros(1, 4, 4)], {"g": [torch.ones(1, 4, 4)]}, 0.5,
                            perturbations=("sharpen",))
