"""GAN losses and discriminator regularisers, chosen by name.

Convention: D returns logits with logit > 0 = *real*.

* ``bce``     - the non-saturating loss of Goodfellow et al. (NeurIPS 2014): D minimises
  BCE(real -> 1, fake -> 0), G minimises BCE(fake -> 1) = softplus(-D(G(z))). Supports one-sided
  label smoothing (Salimans et al., NeurIPS 2016): real targets become ``1 - s``.
* ``minimax`` - the original saturating objective of Goodfellow et al. (2014): D as in ``bce``, G
  minimises ``log(1 - D(G(z))) = -softplus(D(G(z)))``, whose gradient vanishes once D rejects the
  fakes confidently (Arjovsky & Bottou, ICLR 2017). Kept to study that failure (and its remedies).
* ``hinge``   - the hinge loss of Lim & Ye (2017) / Miyato et al. (ICLR 2018).
* ``wgan_gp`` - Wasserstein loss with gradient penalty (Gulrajani et al., NeurIPS 2017).

Regularisers: :func:`gradient_penalty` (WGAN-GP), :func:`r1_penalty` (Mescheder et al., ICML 2018).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from detector.registry import Registry

__all__ = ["LOSSES", "GanLoss", "create_loss", "gradient_penalty", "r1_penalty"]


@dataclass(frozen=True)
class GanLoss:
    """One adversarial objective: ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``."""

    name: str
    gp_weight: float = 0.0  # > 0: add a WGAN-GP gradient penalty to D's loss

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        if self.name in ("bce", "minimax"):
            target = torch.full_like(real, 1.0 - label_smoothing)
            return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()
        if self.name == "hinge":
            return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
        if self.name == "wgan_gp":
            return fake.mean() - real.mean()
        raise KeyError(self.name)

    def g_loss(self, fake: torch.Tensor, non_saturating: bool = False) -> torch.Tensor:
        """G's loss; ``non_saturating`` swaps ``minimax``'s for ``bce``'s (the remedy Goodfellow et al. give)."""
        if self.name == "minimax" and not non_saturating:
            return -F.softplus(fake).mean()  # saturating: log(1 - sigmoid(D(G(z))))
        if self.name in ("bce", "minimax"):
            return F.softplus(-fake).mean()  # non-saturating: -log sigmoid(D(G(z)))
        return -fake.mean()  # hinge and WGAN generators


LOSSES: Registry[GanLoss] = Registry("GAN loss")


@LOSSES.register("bce")
def _bce() -> GanLoss:
    return GanLoss("bce")


@LOSSES.register("minimax")
def _minimax() -> GanLoss:
    return GanLoss("minimax")


@LOSSES.register("hinge")
def _hinge() -> GanLoss:
    return GanLoss("hinge")


@LOSSES.register("wgan_gp")
def _wgan_gp(gp_weight: float = 10.0) -> GanLoss:
    return GanLoss("wgan_gp", gp_weight=gp_weight)


def create_loss(name: str, **kwargs) -> GanLoss:
    return LOSSES.create(name, **kwargs)


def gradient_penalty(d: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``E[(||grad_x D(x)|| - 1)^2]`` on random interpolates of real and fake (Gulrajani et al. 2017)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator, device="cpu").to(real.device)
    x = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def r1_penalty(d: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """``E[||grad_x D(x)||^2]`` on real data (Mescheder, Geiger & Nowozin, ICML 2018); scale by gamma/2."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
