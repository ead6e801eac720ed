"""unmask's adversary: generators, losses, the GAN trainer, its health monitor, and the run directory
every later stage reads (:class:`RunDir`)."""
from __future__ import annotations

from .config import CONFIG_FORMAT_VERSION, GanConfig
from .data import TrainData, load_data
from .generators import GENERATORS, Generator, create_generator, generator_family
from .health import DiversityProbe, HealthConfig, HealthEvent, HealthMonitor
from .losses import LOSSES, GanLoss, create_loss, gradient_penalty, r1_penalty
from .quality import METRIC_NAME, Quality, QualityMeter, feature_net, frechet_distance, precision_recall
from .rounds import continue_training
from .rundir import CheckpointError, NotARunDir, RunDir
from .spectral import azimuthal_average, power_profile, spectral_loss
from .trainer import RunResult, Trainer, train
from .zoo import Snapshot, ZooError, load_zoo, sample, save_snapshot

__all__ = [
    "CONFIG_FORMAT_VERSION", "GanConfig", "TrainData", "load_data",
    "GENERATORS", "Generator", "create_generator", "generator_family",
    "DiversityProbe", "HealthConfig", "HealthEvent", "HealthMonitor",
    "LOSSES", "GanLoss", "create_loss", "gradient_penalty", "r1_penalty",
    "METRIC_NAME", "Quality", "QualityMeter", "feature_net", "frechet_distance", "precision_recall",
    "continue_training", "CheckpointError", "NotARunDir", "RunDir",
    "azimuthal_average", "power_profile", "spectral_loss",
    "RunResult", "Trainer", "train",
    "Snapshot", "ZooError", "load_zoo", "sample", "save_snapshot",
]
