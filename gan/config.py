"""The configuration of a GAN run: one frozen dataclass, written resolved to ``RUN/config.json``
(nanoGPT's ``GPTConfig``, timm's saved ``args.yaml``) and read back by :class:`gan.rundir.RunDir`.

Every CLI option of ``unmask gan train`` maps onto a field here and takes its default from it.
The stabilisers it names: spectral normalisation in D (Miyato et al., ICLR 2018), R1 penalty
(Mescheder et al., ICML 2018), one-sided label smoothing (Salimans et al., NeurIPS 2016), annealed
instance noise (Sønderby et al., ICLR 2017), two time-scale learning rates (Heusel et al., NeurIPS
2017) and the spectral loss of Durall et al. (CVPR 2020) on G.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .generators import GENERATORS, NON_GAN_GENERATORS, generator_family
from .losses import LOSSES

__all__ = ["GanConfig", "CONFIG_FORMAT_VERSION"]

CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class GanConfig:
    """Everything that defines a GAN run; written resolved to ``RUN/config.json``."""

    data: str = "fashion-mnist"
    image_size: int = 28
    channels: int = 1
    generator: str = "dcgan"
    generator_args: dict = field(default_factory=dict)  # extra generator arguments, e.g. {"mode": "bilinear"}
    z_dim: int = 64
    g_width: int = 32  # generator width (channels of the last hidden stage); generator_args may override
    d_width: int = 32
    d_norm: str = "auto"  # auto: 'layer' for wgan_gp (no batch norm under a gradient penalty), else 'batch'
    loss: str = "bce"
    steps: int = 2000
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    spectral_norm: bool = False
    r1: float = 0.0  # gamma; adds gamma/2 * E||grad D(real)||^2
    label_smoothing: float = 0.0  # one-sided: real target 1 - s (bce, minimax)
    instance_noise: float = 0.0  # initial sigma (images in [-1, 1]), annealed linearly to 0
    noise_anneal_steps: int = 0  # 0: anneal over the whole run
    spectral_loss: float = 0.0  # weight of the Durall spectral loss on G
    gp_weight: float = 10.0  # WGAN-GP penalty weight
    d_steps: int = 1  # D updates per G update
    auto_remedy: bool = False
    seed: int = 0
    device: str = "cpu"
    health_every: int = 50
    health_window: int = 4
    checkpoint_every: int = 500
    sample_every: int = 0  # 0: once per epoch
    quality_every: int = 0  # 0: once per epoch; < 0: never (except at the end)
    quality_samples: int = 1000
    quality_ref: int = 2000  # real reference images for FD-FMNIST (held-out test split for fashion-mnist)
    zoo_fractions: tuple = (0.25, 0.5, 1.0)  # early, middle, late
    progress: bool = True
    health_plot: bool = True  # write health.png at the end
    amp: bool = False  # bfloat16 autocast on CUDA (ignored, with a note, on CPU)

    def __post_init__(self) -> None:
        errs = []
        if self.generator not in GENERATORS:
            errs.append(f"unknown generator {self.generator!r}; known: {', '.join(GENERATORS.names())}")
        if self.loss not in LOSSES:
            errs.append(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES.names())}")
        if self.channels not in (1, 3):
            errs.append(f"channels must be 1 or 3, not {self.channels}")
        for name in ("steps", "batch_size", "z_dim", "g_width", "d_width", "d_steps", "health_every", "health_window",
                     "checkpoint_every", "quality_samples", "quality_ref"):
            if int(getattr(self, name)) < 1:
                errs.append(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.batch_size < 2:
            errs.append("batch_size must be >= 2 (batch norm and diversity need pairs)")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                errs.append(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("r1", "instance_noise", "spectral_loss", "gp_weight", "noise_anneal_steps"):
            if getattr(self, name) < 0:
                errs.append(f"{name} must be >= 0, not {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 0.5:
            errs.append(f"label_smoothing must be in [0, 0.5), not {self.label_smoothing}")
        if self.label_smoothing > 0 and self.loss not in ("bce", "minimax"):
            errs.append(f"label_smoothing applies to the bce and minimax losses only (loss is {self.loss!r})")
        if self.d_norm not in ("auto", "none", "batch", "instance", "layer"):
            errs.append(f"d_norm must be auto, none, batch, instance or layer, not {self.d_norm!r}")
        if self.d_norm == "batch" and self.loss == "wgan_gp":
            errs.append("wgan_gp with batch norm in D is invalid (the penalty is per-sample): use d_norm layer")
        fr = tuple(self.zoo_fractions)
        if not fr or any(not 0 < f <= 1 for f in fr) or list(fr) != sorted(set(fr)):
            errs.append(f"zoo_fractions must be increasing values in (0, 1], not {fr}")
        if errs:
            raise ValueError("invalid GAN config: " + "; ".join(errs))
        object.__setattr__(self, "zoo_fractions", tuple(float(f) for f in fr))
        object.__setattr__(self, "generator_args", dict(self.generator_args))

    # ------------------------------------------------------------------ resolved views
    def resolved_generator_args(self) -> dict:
        extra = {k: v for k, v in self.generator_args.items() if k not in ("z_dim", "image_size", "channels")}
        for k in ("z_dim", "image_size", "channels"):
            if k in self.generator_args and self.generator_args[k] != getattr(self, k):
                raise ValueError(f"generator_args[{k!r}]={self.generator_args[k]} contradicts {k}={getattr(self, k)}")
        return {"z_dim": self.z_dim, "image_size": self.image_size, "channels": self.channels, "width": self.g_width,
                **extra}

    def discriminator_args(self) -> dict:
        norm = self.d_norm if self.d_norm != "auto" else ("layer" if self.loss == "wgan_gp" else "batch")
        return {"in_channels": self.channels, "image_size": self.image_size, "width": self.d_width,
                "norm": norm, "spectral_norm": self.spectral_norm}

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["zoo_fractions"] = list(self.zoo_fractions)
        d["generator_args"] = self.resolved_generator_args()
        d["family"] = generator_family(self.generator, d["generator_args"])
        if self.generator not in NON_GAN_GENERATORS:  # a VAE or diffusion run has no discriminator
            d["discriminator"] = {"network": "dcgan_d", "args": self.discriminator_args()}
        d["format_version"] = CONFIG_FORMAT_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict) -> "GanConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "zoo_fractions" in kw:
            kw["zoo_fractions"] = tuple(kw["zoo_fractions"])
        ga = dict(kw.get("generator_args", {}))  # resolved form -> the extras only
        for k in ("z_dim", "image_size", "channels"):
            ga.pop(k, None)
        if "width" in ga and ga["width"] == kw.get("g_width", cls.g_width):
            ga.pop("width")
        kw["generator_args"] = ga
        return cls(**kw)

    # ------------------------------------------------------------------ schedule
    def zoo_steps(self) -> dict[int, str]:
        """Step -> stage name of each zoo snapshot (``early``/``middle``/``late`` for three fractions)."""
        stages = ("early", "middle", "late")
        return {max(1, round(f * self.steps)): stages[min(i, 2)] if len(self.zoo_fractions) == 3
                else f"f{int(f * 100):03d}" for i, f in enumerate(self.zoo_fractions)}

    def for_resume(self, saved: "GanConfig") -> "GanConfig":
        """The config a resumed run trains with: the saved one wins, except ``steps`` (may only grow) and
        the run-time knobs ``progress``, ``device`` and ``amp``, which come from this (requested) one."""
        same = dataclasses.replace(saved, steps=self.steps, progress=self.progress, device=self.device, amp=self.amp)
        if same == self:
            return self
        return dataclasses.replace(saved, steps=max(self.steps, saved.steps), progress=self.progress,
                                   device=self.device, amp=self.amp)
