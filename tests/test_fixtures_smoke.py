"""The shared fixtures produce a detector that separates the fixture fakes from real images."""
import torch

from detector.artifact import load


def test_tiny_detector_separates_fixture_fakes(tiny_detector, real_images, fake_images):
    det = load(tiny_detector)
    real = det.score_batch(real_images[384:])
    fake = det.score_batch(fake_images[384:])
    # every held-out fake scores above every held-out real: the ranking is perfect
    assert fake.min() > real.max()
    assert real.shape == (128,) and torch.all((real >= 0) & (real <= 1))
