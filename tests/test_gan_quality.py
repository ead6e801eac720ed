"""FD-FMNIST, precision/recall (Kynkäänniemi et al. 2019) and the offline feature network."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.quality import METRIC_NAME, QualityMeter, feature_net, frechet_distance, precision_recall


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = a + np.array([2.0, 0.0, 0.0])  # mean shift only: FD = ||mu1 - mu2||^2
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=1e-6)
    c = a * 2.0  # cov 4S vs S: FD = tr(S + 4S - 2 * 2S) = tr(S)
    assert frechet_distance(a, c) == pytest.approx(3.0 * float(np.var(a, axis=0, ddof=1).mean()), rel=0.05)


def test_precision_recall_identical_and_disjoint():
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    assert precision_recall(x, x) == (1.0, 1.0)
    p, r = precision_recall(x, x + 100.0)
    assert p == 0.0 and r == 0.0
    p, r = precision_recall(x, x[:1].repeat(50, 1) + 1e-3 * torch.randn(50, 4))  # one mode
    assert p == 1.0 and r < 0.2


def test_feature_net_is_cached_and_separates_real_from_noise(tmp_path, real_images):
    net = feature_net([tmp_path])
    assert any(tmp_path.glob("*.safetensors"))
    meter = QualityMeter(net, real_images[:256])
    same = meter(real_images[256:512])
    noise = meter(torch.rand(256, 1, 28, 28))
    collapsed = meter(real_images[300:301].repeat(256, 1, 1, 1))
    assert same.metric == METRIC_NAME == "FD-FMNIST"
    assert same.fd < 0.1 * noise.fd and same.recall > 0.7 and noise.recall < 0.05
    assert same.coverage >= 0.9 and collapsed.coverage == pytest.approx(0.1)
    net2 = feature_net([tmp_path])  # loaded from the cache: identical features
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(net.features(x), net2.features(x))
