"""The generator families of unmask's zoo: the kinds of generator whose traces a detector must learn.

Each family is a registered generator (:mod:`gan.generators`) with fixed arguments and the way it is
trained. They differ in how the image is made, which is what leaves the traces a detector reads:

=================  =========  ==========================================================================
family             a GAN?     how it makes an image
=================  =========  ==========================================================================
dcgan              yes        transposed convolutions (checkerboard traces; Odena et al., Distill 2016)
upconv             yes        nearest resize then 3x3 convolution (Odena et al.'s fix)
upconv-bilinear    yes        bilinear resize then 3x3 convolution (smoother still)
vae                NO         decoder of a convolutional VAE, likelihood-trained (smooth images)
diffusion          NO         small UNet denoiser, DDPM training, DDIM sampling in a few steps
=================  =========  ==========================================================================

``unmask gan train --family NAME`` trains any of them into the same run-directory layout (config,
checkpoints, sample grids, early/middle/late zoo snapshots, resume); GANs by :mod:`gan.trainer`, the
others by :mod:`gan.likelihood`. Their snapshots load and sample alike (:func:`gan.zoo.load_zoo`,
:func:`gan.zoo.sample`), so hardening needs no per-family code. A snapshot records its family.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config import GanConfig
from .generators import NON_GAN_GENERATORS

__all__ = ["Family", "FAMILIES", "family", "family_names", "family_config"]


@dataclass(frozen=True)
class Family:
    """A generator family: its registered generator, fixed generator arguments and training defaults."""

    name: str
    generator: str
    about: str
    generator_args: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)  # GanConfig fields this family trains best with

    @property
    def is_gan(self) -> bool:
        return self.generator not in NON_GAN_GENERATORS


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("dcgan", "dcgan", "GAN, transposed-convolution generator"),
    Family("upconv", "upconv", "GAN, nearest resize-then-convolve generator", {"mode": "nearest"}),
    Family("upconv-bilinear", "upconv", "GAN, bilinear resize-then-convolve generator", {"mode": "bilinear"}),
    Family("vae", "vae", "NOT a GAN: convolutional variational auto-encoder (decoder sampled from the prior)",
           defaults={"z_dim": 16, "lr_g": 1e-3}),
    Family("diffusion", "diffusion", "NOT a GAN: denoising diffusion model (small UNet, DDIM sampling)",
           defaults={"lr_g": 1e-3}),
)}


def family_names() -> list[str]:
    return list(FAMILIES)


def family(name: str) -> Family:
    """The family called ``name`` (a clear error listing the known ones otherwise)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown generator family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_config(name: str, **fields) -> GanConfig:
    """A :class:`GanConfig` training family ``name``: its generator and arguments, its defaults, then
    ``fields`` (explicit values win; a diffusion model's ``z_dim`` is its noise image, C * S * S)."""
    fam = family(name)
    fields = {**fam.defaults, **{k: v for k, v in fields.items() if v is not None}}
    if fam.generator == "diffusion":
        d = GanConfig()
        fields["z_dim"] = int(fields.get("channels", d.channels)) * int(fields.get("image_size", d.image_size)) ** 2
    names = {f.name for f in dataclasses.fields(GanConfig)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValueError(f"unknown GanConfig fields {unknown}")
    return GanConfig(generator=fam.generator, generator_args={**fam.generator_args, **fields.pop("generator_args", {})},
                     **fields)
