"""Detector cost vs the field's reference model.

Per-image inference time of our shipped detector network (``dcgan_d`` at its 28-px input) vs a
torchvision ResNet-50 at 224 px, the backbone of CNNDetection (Wang et al., CVPR 2020), on the same
number of images, same threads, ``torch.inference_mode``. ResNet-50 is built with random weights
(no download): its cost does not depend on the weights.

Also the cost of the trace options of ``dcgan_d`` (issue 14, ``docs/generalisation.md``): the NPR
residue as input (``residual="npr"``) plus the DCT branch (``spectral=True``), vs the plain network.
"""
from __future__ import annotations

import torch

from bench.common import best_of, pin_threads, stand_in


def run(tiny: bool = False) -> dict:
    from torchvision.models import resnet50

    # One thread for both: on this shared 2-core box two OpenMP threads stall whenever another job
    # takes a core (bench/gan_speed.md), which made single measurements swing by 10x.
    pin_threads(1)
    n = 2 if tiny else 32
    det = stand_in("resize")   # the shipped inference path
    ours = det.logits
    trace = stand_in("resize", residual="npr", spectral=True).logits
    # the GAN's D at its default width 32 (what `make demo` hardened before issue 14) and the two
    # trace detectors of docs/generalisation.md: width 32 (the demo's) and width 64 (the best recipe)
    plain32 = stand_in("resize", width=32).logits
    trace32 = stand_in("resize", width=32, residual="npr", spectral=True).logits
    # The reference gets the same channels-last CPU layout our Detector uses (a fair, tuned baseline).
    ref = resnet50(weights=None, num_classes=1).eval().to(memory_format=torch.channels_last)
    x_ours = torch.rand(n, 1, 28, 28)
    x_ref = torch.rand(n, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ours(x_ours), ref(x_ref[:2])  # warm-up
        trace(x_ours), plain32(x_ours), trace32(x_ours)
        t_ours = best_of(lambda: ours(x_ours), 2 if tiny else 20) / n
        t_trace = best_of(lambda: trace(x_ours), 2 if tiny else 20) / n
        t_plain32 = best_of(lambda: plain32(x_ours), 2 if tiny else 20) / n
        t_trace32 = best_of(lambda: trace32(x_ours), 2 if tiny else 20) / n
        t_ref = best_of(lambda: ref(x_ref), 1 if tiny else 3) / n
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "ours_ms_per_image": 1e3 * t_ours,
        "resnet50_ms_per_image": 1e3 * t_ref,
        "speedup_vs_resnet50": t_ref / t_ours,
        "npr_dct_ms_per_image": 1e3 * t_trace,
        "npr_dct_vs_plain": t_trace / t_ours,
        "plain_w32_ms_per_image": 1e3 * t_plain32,
        "npr_dct_w32_vs_plain_w32": t_trace32 / t_plain32,
        "npr_dct_w64_vs_plain_w32": t_trace / t_plain32,
        "ours_params": params(det.net),
        "resnet50_params": params(ref),
        "images": n,
        "threads": 1,
    }


if __name__ == "__main__":
    print(run())
