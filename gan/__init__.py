"""unmask's adversary: generators, losses, the GAN trainer and its health monitor."""
from __future__ import annotations

from .generators import GENERATORS, Generator, create_generator, generator_family
from .health import DiversityProbe, HealthConfig, HealthEvent, HealthMonitor
from .losses import LOSSES, GanLoss, create_loss, gradient_penalty, r1_penalty
from .quality import METRIC_NAME, Quality, QualityMeter, feature_net, frechet_distance, precision_recall
from .spectral import azimuthal_average, power_profile, spectral_loss
from .trainer import GanConfig, RunResult, continue_training, load_config, train
from .zoo import Snapshot, ZooError, final_generator, find_snapshot, load_discriminator, load_zoo, sample, save_snapshot

__all__ = [
    "GENERATORS", "Generator", "create_generator", "generator_family",
    "DiversityProbe", "HealthConfig", "HealthEvent", "HealthMonitor",
    "LOSSES", "GanLoss", "create_loss", "gradient_penalty", "r1_penalty",
    "METRIC_NAME", "Quality", "QualityMeter", "feature_net", "frechet_distance", "precision_recall",
    "azimuthal_average", "power_profile", "spectral_loss",
    "GanConfig", "RunResult", "continue_training", "load_config", "train",
    "Snapshot", "ZooError", "final_generator", "find_snapshot", "load_discriminator", "load_zoo", "sample", "save_snapshot",
]
