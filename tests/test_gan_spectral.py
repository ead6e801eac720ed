"""The spectral loss is differentiable end to end (unlike the detached NumPy reference code)."""
from __future__ import annotations

import torch

from gan.generators import create_generator
from gan.spectral import azimuthal_average, power_profile, spectral_loss


def test_spectral_loss_gradients_reach_every_generator_parameter():
    torch.manual_seed(0)
    g = create_generator("dcgan", z_dim=8, image_size=28, channels=1, width=4)
    real = torch.rand(6, 1, 28, 28) * 2 - 1
    loss = spectral_loss(g(torch.randn(6, 8)), real)
    loss.backward()
    weights = [p for n, p in g.named_parameters() if n.endswith("weight")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_spectral_loss_descends():
    torch.manual_seed(0)
    real = torch.rand(8, 1, 16, 16) * 2 - 1  # white noise: flat spectrum
    x = torch.nn.functional.avg_pool2d(torch.rand(8, 1, 16, 16), 3, 1, 1).requires_grad_(True)  # smooth
    opt = torch.optim.Adam([x], lr=0.05)
    first = spectral_loss(x, real).item()
    for _ in range(25):
        loss = spectral_loss(x, real)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert spectral_loss(x, real).item() < 0.9 * first


def test_azimuthal_average_of_constant_and_radial_layout():
    ones = torch.ones(2, 8, 8)
    prof = azimuthal_average(ones)
    assert prof.shape == (2, 7) and torch.allclose(prof, torch.ones(2, 7))  # corner radius sqrt(32) -> ring 6
    impulse = torch.zeros(1, 8, 8)
    impulse[0, 4, 4] = 1.0  # the centre (DC after fftshift) falls in ring 0 alone
    assert azimuthal_average(impulse)[0, 0] == 1.0 and azimuthal_average(impulse)[0, 1:].abs().sum() == 0


def test_power_profile_is_normalised():
    p = power_profile(torch.rand(3, 3, 32, 32))
    assert p.shape[0] == 3 and p.min() >= 0 and p.max() <= 1 + 1e-6
    assert torch.allclose(p.max(1).values, torch.ones(3), atol=1e-5)
