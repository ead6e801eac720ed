"""Shared fixtures: tiny sizes, fixed seeds, CPU only, no network."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)  # tiny models: one thread is as fast and immune to a busy neighbour


# ----------------------------------------------------------------------------- shared data
# Session-scoped so the suite pays for them once. `fake_images` come from an untrained
# transposed-convolution generator (the GAN family unmask hardens against); the GAN issue may
# swap in a few-step trained `gan` generator. `tiny_detector` is a small dcgan_d trained
# briefly on real vs those fakes: enough for pipeline tests (scan, video, eval), not for quality.


@pytest.fixture(scope="session")
def real_images() -> torch.Tensor:
    """Held-out embedded Fashion-MNIST test images, ``(512, 1, 28, 28)`` in [0, 1]."""
    from detector.data import load_fashion_mnist

    data = load_fashion_mnist("test", variant="embedded")
    return torch.from_numpy(data.images[:512].copy()).unsqueeze(1).float() / 255.0


def _tconv_generator(seed: int) -> torch.nn.Module:
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.ConvTranspose2d(16, 32, 7, 1, 0), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh(),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


@pytest.fixture(scope="session")
def fake_images() -> torch.Tensor:
    """``(512, 1, 28, 28)`` in [0, 1] from an untrained transposed-conv generator (fixed seed)."""
    g = _tconv_generator(1)
    z = torch.randn(512, 16, 1, 1, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return (g(z) * 0.5 + 0.5).clamp(0, 1)


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory, real_images, fake_images):
    """A saved detector directory (``dcgan_d`` width 16, threshold 0.5) trained on real vs fake."""
    from detector.artifact import Detector, spec_for_network
    from detector.nets import create_network
    from detector.train.loop import fit_bce

    torch.manual_seed(0)  # the initial weights and (no generator given) the batches
    args = dict(in_channels=1, image_size=28, width=16, norm="batch")
    net = create_network("dcgan_d", **args)
    x = torch.cat([real_images[:384], fake_images[:384]])
    y = torch.cat([torch.zeros(384), torch.ones(384)])
    fit_bce(net, x, y, steps=60, batch_size=64, lr=2e-3, mean=[0.5], std=[0.5])
    spec = spec_for_network("dcgan_d", args, 28, 1, policy="tile", provenance={"note": "test fixture"})
    out = tmp_path_factory.mktemp("detector")
    Detector(net, spec).save(out)
    return out
