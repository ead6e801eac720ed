"""The training stack's configuration: one frozen dataclass per component.

Plain dataclasses with no torch, cv2 or numpy import, so the CLI can read its option defaults
from them (``default=HardenConfig().steps``) without loading the training code. Each component
module re-exports its own config (``detector.train.harden.HardenConfig`` is this class).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["AugmentConfig", "HardenConfig", "RetrainConfig"]


@dataclass(frozen=True)
class AugmentConfig:
    """Probability and range of each augmentation (each drawn independently per image).

    Blur and down-and-up rescaling are off by default: applied to real images (labelled real) they
    teach the detector that a smooth image is real, and smoothness is the trace of generators that
    up-sample by interpolation. Measured leave-one-family-out (docs/generalisation.md): a held-out
    VAE was caught 42% of the time with them at 0.1, 96% without, the other families within a few
    points. Turn them on for robustness to blurred or re-scaled fakes, at that cost."""

    p_jpeg: float = 0.1
    jpeg_quality: tuple[int, int] = (30, 100)
    p_blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    p_rescale: float = 0.0
    rescale_factor: tuple[float, float] = (0.5, 1.0)   # down by this factor, then back up
    p_noise: float = 0.1
    noise_std: tuple[float, float] = (0.0, 0.03)
    p_flip: float = 0.5

    def __post_init__(self) -> None:
        for name in ("p_jpeg", "p_blur", "p_rescale", "p_noise", "p_flip"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality must satisfy 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if not 0.0 <= self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must be 0 <= low <= high, got {self.blur_sigma}")
        if not 0.0 < self.rescale_factor[0] <= self.rescale_factor[1] <= 1.0:
            raise ValueError(f"rescale_factor must be in (0, 1], got {self.rescale_factor}")
        if not 0.0 <= self.noise_std[0] <= self.noise_std[1]:
            raise ValueError(f"noise_std must be 0 <= low <= high, got {self.noise_std}")

    def scaled(self, factor: float) -> "AugmentConfig":
        """The same recipe with every probability except flips multiplied by ``factor`` (capped at 1)."""
        f = lambda p: min(1.0, max(0.0, p * factor))  # noqa: E731
        return AugmentConfig(f(self.p_jpeg), self.jpeg_quality, f(self.p_blur), self.blur_sigma, f(self.p_rescale),
                             self.rescale_factor, f(self.p_noise), self.noise_std, self.p_flip)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, obj: dict) -> "AugmentConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in obj.items()})


@dataclass(frozen=True)
class HardenConfig:
    """How to harden; maps onto ``unmask harden`` options and is saved in provenance."""

    steps: int = 8000
    batch_size: int = 64             # half real, half fake
    lr: float = 4e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    cosine: bool = True              # cosine learning-rate decay to 0 over the steps (Loshchilov & Hutter 2017)
    target_fpr: float = 0.01
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    checkpoint_every: int = 100
    eval_batch: int = 512
    replay_per_generator: int = 1024  # fakes per generator (and per split) kept for retraining
    device: str = "cpu"
    amp: bool = False                # bfloat16 autocast on CUDA (ignored, with a note, on CPU)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if not 0.0 < self.target_fpr < 1.0:
            raise ValueError(f"target_fpr must be in (0, 1), got {self.target_fpr}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")

    def to_json(self) -> dict:
        d = asdict(self)
        d["augment"] = self.augment.to_json()
        d["betas"] = list(self.betas)
        return d


@dataclass(frozen=True)
class RetrainConfig:
    """How to retrain with replay; maps onto ``unmask retrain`` options and is saved in provenance."""

    steps: int = 400
    batch_size: int = 64
    lr: float = 1e-4
    replay_weight: float = 0.5       # share of the fake half drawn from the old generators' replay
    target_fpr: float | None = None  # None: keep the artifact's (from its provenance), else 0.01
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    checkpoint_every: int = 100
    replay_per_generator: int = 1024
    device: str = "cpu"
    amp: bool = False                # bfloat16 autocast on CUDA (ignored, with a note, on CPU)

    def __post_init__(self) -> None:
        if not 0.0 <= self.replay_weight < 1.0:
            raise ValueError(f"replay_weight must be in [0, 1), got {self.replay_weight}")
        if self.steps < 0 or self.batch_size < 2:
            raise ValueError("steps must be >= 0 and batch_size >= 2")

    def to_json(self) -> dict:
        return {**asdict(self), "augment": self.augment.to_json()}
