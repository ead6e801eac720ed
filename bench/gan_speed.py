"""Training speed of unmask's GAN trainer against a plain reference DCGAN loop.

The reference is written like PyTorch's classic DCGAN example (pytorch/examples, dcgan/main.py):
a shuffled ``DataLoader``, D updated on a real batch then on ``fake.detach()``, G updated through
D on the same fake batch, BCE loss, Adam(2e-4, betas 0.5/0.999). Both loops use the *same*
generator and discriminator classes, widths and batch size; ours additionally logs health
statistics, FD-FMNIST, sample grids, checkpoints and zoo snapshots on its usual schedule.

Reported: images/s (real images through D per second) and the ratio ours / reference.

    PYTHONPATH=. python bench/gan_speed.py --steps 300 --threads 2
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["SpeedResult", "reference_loop", "ours", "compare", "run"]


@dataclass(frozen=True)
class SpeedResult:
    steps: int
    batch_size: int
    image_size: int
    threads: int
    reference_images_per_s: float
    ours_images_per_s: float
    ratio: float  # ours / reference (>= 1.0: ours is at least as fast)
    ours_steps_per_s: float


def _data(image_size: int) -> torch.Tensor:
    from detector.data import open_source

    return open_source("fashion-mnist:embedded", size=image_size, channels=1, split="train").images


def reference_loop(images: torch.Tensor, steps: int, batch_size: int, z_dim: int, g_width: int, d_width: int,
                   image_size: int, seed: int = 0) -> float:
    """The classic-example loop; returns real images per second."""
    from torch.utils.data import DataLoader, TensorDataset

    from detector.nets import create_network
    from gan.generators import create_generator

    torch.manual_seed(seed)
    netG = create_generator("dcgan", z_dim=z_dim, image_size=image_size, channels=1, width=g_width)
    netD = create_network("dcgan_d", in_channels=1, image_size=image_size, width=d_width, norm="batch")
    criterion = nn.BCEWithLogitsLoss()  # the example's Sigmoid + BCELoss, fused (our D returns logits)
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(TensorDataset(images * 2 - 1), batch_size=batch_size, shuffle=True, drop_last=True)
    done, t0 = 0, time.perf_counter()
    while done < steps:
        for (real,) in loader:
            netD.zero_grad()
            label = torch.full((real.size(0),), 1.0)
            errD_real = criterion(netD(real).view(-1), label)
            errD_real.backward()
            noise = torch.randn(real.size(0), z_dim)
            fake = netG(noise)
            label.fill_(0.0)
            errD_fake = criterion(netD(fake.detach()).view(-1), label)
            errD_fake.backward()
            optimizerD.step()
            netG.zero_grad()
            label.fill_(1.0)
            errG = criterion(netD(fake).view(-1), label)
            errG.backward()
            optimizerG.step()
            done += 1
            if done >= steps:
                break
    return steps * batch_size / (time.perf_counter() - t0)


def ours(steps: int, batch_size: int, z_dim: int, g_width: int, d_width: int, image_size: int,
         seed: int = 0, **overrides) -> float:
    """unmask's trainer with its default monitoring; returns real images per second of the loop."""
    from gan.trainer import GanConfig, train

    cfg = GanConfig(data="fashion-mnist:embedded", image_size=image_size, z_dim=z_dim, g_width=g_width,
                    d_width=d_width, steps=steps, batch_size=batch_size, seed=seed, progress=False,
                    health_plot=False, **overrides)
    with tempfile.TemporaryDirectory() as d:
        return train(cfg, d).images_per_second


def compare(steps: int = 300, batch_size: int = 64, image_size: int = 28, z_dim: int = 64, g_width: int = 32,
            d_width: int = 32, threads: int = 2, repeats: int = 2, **overrides) -> SpeedResult:
    """Alternate reference and ours ``repeats`` times (best of each), on ``threads`` CPU threads."""
    torch.set_num_threads(threads)
    images = _data(image_size)
    arch = dict(batch_size=batch_size, z_dim=z_dim, g_width=g_width, d_width=d_width, image_size=image_size)
    ref, our = [], []
    for _ in range(repeats):
        ref.append(reference_loop(images, steps, **arch))
        our.append(ours(steps, **arch, **overrides))
    r, o = max(ref), max(our)
    return SpeedResult(steps, batch_size, image_size, threads, r, o, o / r, o / batch_size)


def run(tiny: bool = False) -> dict:
    """``python -m bench`` entry: 300 steps, batch 64, one thread, best of 4 alternations (tiny: 3
    steps of a width-4 pair at batch 8, with a small quality reference)."""
    if tiny:
        res = compare(steps=3, batch_size=8, g_width=4, d_width=4, z_dim=4, threads=1, repeats=1,
                      quality_samples=32, quality_ref=64)
    else:
        res = compare(steps=300, threads=1, repeats=4)
    return asdict(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    res = compare(a.steps, a.batch_size, a.image_size, threads=a.threads, repeats=a.repeats)
    print(json.dumps(asdict(res), indent=2))
    print(f"ours / reference = {res.ratio:.2f} ({res.ours_images_per_s:.0f} vs {res.reference_images_per_s:.0f} "
          f"images/s; ours {res.ours_steps_per_s:.1f} steps/s at batch {res.batch_size})")


if __name__ == "__main__":
    main()
