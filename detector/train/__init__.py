"""unmask's training stack: turning a GAN discriminator into a detector, and keeping it current.

Never imported by ``import detector``: loading and running an artifact needs none of it (nor cv2,
which the degradations use). Modules, one concept each:

    config       frozen configs (AugmentConfig, HardenConfig, RetrainConfig), no heavy imports
    degrade      the one set of image degradations (JPEG, blur, rescale, noise), for training and eval
    augment      random degradations per image while training (CNNDetection recipe)
    splits       the one seeded train / val / test split, and the real data's splits
    metrics      the metrics core, numpy only (AUC, ROC, AP, EER, TPR at FPR, threshold rule)
    calibration  temperature scaling, threshold choice, per-split metrics
    loop         the one detector training loop (balanced hardening batches, plain BCE fits)
    replay       the replay buffer kept beside an artifact
    harden       discriminator -> calibrated detector artifact
    retrain      fine-tune on a new generator with replay of the old ones

Public names are importable from here; each loads its module on first use (PEP 562).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "config": ["AugmentConfig", "HardenConfig", "RetrainConfig"],
    "degrade": ["jpeg", "gaussian_blur", "rescale", "add_noise", "quantize"],
    "augment": ["augment_batch"],
    "splits": ["Splits", "split_indices", "split_tensor", "split_train_test", "fingerprint", "real_splits"],
    "metrics": ["MetricError", "auc", "roc_curve", "average_precision", "equal_error_rate", "tpr_at_fpr",
                "threshold_at_fpr"],
    "calibration": ["SplitMetrics", "Calibrated", "fit_temperature", "collect_logits", "evaluate",
                    "format_metrics", "calibrate_and_evaluate"],
    "loop": ["CheckpointMismatch", "ProcessGroupMissing", "train_steps", "fit_bce", "train_detector"],
    "replay": ["REPLAY_FILE", "ReplayError", "save_replay", "load_replay"],
    "harden": ["HardenResult", "CHECKPOINT_DIR"],   # harden() and retrain() share their modules' names:
    "retrain": ["RetrainResult"],                    # import them from detector.train.harden / .retrain
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
