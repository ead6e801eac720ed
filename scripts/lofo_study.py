"""Leave-one-family-out study (issue 14): does a hardened discriminator catch a generator family it
never saw, and which detector variant generalises best?

For each held-out family group (dcgan; upconv = nearest + bilinear; vae; diffusion) a detector is
hardened (:func:`detector.train.harden.harden`, threshold at 1% FPR on validation reals) on real
images vs the zoo snapshots of the other families, then measured on the held-out family's fakes and
the held-out real test images: AUC with a bootstrap interval, % caught at the shipped threshold, FPR
on the real test images, the same AUC on JPEG-75 copies, and the DCT + logistic-regression baseline
(Frank et al. 2020) fitted on the same training images. Variants: the network options of
:mod:`detector.nets` (``residual``, ``spectral``) and the augmentation strength.

Runs come from ``unmask gan train --family NAME`` (cached under ``--runs``); fakes sampled from every
zoo snapshot are cached there too. Writes JSON results (one record per variant x held-out family)::

    python scripts/lofo_study.py --runs /work/runs-families --variants plain,npr,npr_dct --steps 600 \\
        --out /work/runs-families/lofo.json
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

GROUPS = {"dcgan": ["dcgan"], "upconv": ["upconv", "upconv-bilinear"], "vae": ["vae"], "diffusion": ["diffusion"]}
VARIANTS = {
    "plain": {},
    "npr": {"residual": "npr"},
    "npr_both": {"residual": "both"},
    "npr_dct": {"residual": "npr", "spectral": True},
    "both_dct": {"residual": "both", "spectral": True},
    "npr_dct_strongaug": {"residual": "npr", "spectral": True, "_aug": "strong"},
    "npr_dct_sharp": {"residual": "npr", "spectral": True, "_aug": "sharp"},
    "both_dct_sharp": {"residual": "both", "spectral": True, "_aug": "sharp"},
    "npr_dct_jpegonly": {"residual": "npr", "spectral": True, "_aug": "jpegonly"},
    "npr_sim": {"residual": "npr", "_sim": True},
    "npr_dct_sim": {"residual": "npr", "spectral": True, "_sim": True},
}


def simulated_upsampling(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Real images re-made through a random 2x down/up-sampling (AutoGAN-style simulated
    generator traces): every decoder ends in an up-sampling; the detector sees its trace without
    any generator's content."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    out = torch.empty_like(x)
    modes = ["nearest", "bilinear", "bicubic"]
    pick = torch.randint(0, len(modes), (len(x),), generator=g)
    for k, mode in enumerate(modes):
        idx = (pick == k).nonzero().flatten()
        if len(idx):
            small = F.interpolate(x[idx], scale_factor=0.5, mode="area")
            kw = {} if mode == "nearest" else {"align_corners": False}
            out[idx] = F.interpolate(small, size=x.shape[-2:], mode=mode, **kw).clamp(0, 1)
    return out


def family_fakes(runs: Path, name: str, per_snapshot: int, seed: int) -> torch.Tensor:
    """Fakes from every zoo snapshot of the family's run (cached as ``fakes_<name>_<n>.pt``)."""
    from gan.zoo import load_zoo, sample

    cache = runs / f"fakes_{name}_{per_snapshot}.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    x = torch.cat([sample(s, per_snapshot, seed=seed + 1000 + k) for k, s in enumerate(load_zoo(runs / name))])
    torch.save(x, cache)
    return x


def _scores(det, x: torch.Tensor) -> np.ndarray:
    return torch.cat([det.score_batch(x[i:i + 512]) for i in range(0, len(x), 512)]).numpy()


def _jpeg(x: torch.Tensor, q: int = 75) -> torch.Tensor:
    from detector.train.degrade import jpeg

    return torch.stack([jpeg(img, q) for img in x])


def held_out_metrics(det, real_test: torch.Tensor, fakes: torch.Tensor, bootstrap: int) -> dict:
    from eval.metrics import auc, bootstrap_ci

    from eval.scoring import domain_scorer

    verdicts = domain_scorer(det)
    vr, vf = verdicts(list(real_test)), verdicts(list(fakes))
    sr, sf = vr.scores, vf.scores
    y, s = np.r_[np.zeros(len(sr)), np.ones(len(sf))], np.r_[sr, sf]
    t = det.spec.threshold
    ci = bootstrap_ci(y, s, t, n=bootstrap)[0]
    rec = {"auc": float(auc(y, s)), "auc_ci": ci, "caught": float((sf >= t).mean()), "fpr": float((sr >= t).mean()),
           "n_real": len(sr), "n_fake": len(sf)}
    if vr.in_domain is not None:  # what the domain guard lets through (a scan labels the rest out_of_domain)
        rec.update(in_domain_real=float(vr.in_domain.mean()), in_domain_fake=float(vf.in_domain.mean()),
                   caught_in_domain=float(((sf >= t) & vf.in_domain).mean()))
    return rec


def run_fold(args, variant: str, held: str, real, fam_splits: dict, out: Path) -> dict:
    from detector import load
    from detector.nets import create_network
    from detector.train.config import AugmentConfig, HardenConfig
    from detector.train.harden import harden
    from eval.baselines import create_baseline
    from eval.metrics import auc

    opts = dict(VARIANTS[variant])
    aug = opts.pop("_aug", "default")
    train_fams = {n: s for n, s in fam_splits.items() if n not in GROUPS[held]}
    if opts.pop("_sim", False):  # pseudo-fakes made from (other) real images of each split
        from detector.train.splits import Splits

        n = min(len(s.train) for s in train_fams.values())
        train_fams["sim-upsample"] = Splits(*(simulated_upsampling(r[-m:], args.seed + j) for j, (r, m) in enumerate(
            ((real.train, n), (real.val, len(next(iter(train_fams.values())).val)), (real.test, 200)))))
    arch = {"in_channels": 1, "image_size": 28, "width": args.width, "norm": "batch", **opts}
    torch.manual_seed(args.seed)
    net = create_network("dcgan_d", **arch)
    cfg = HardenConfig(steps=args.steps, seed=args.seed, checkpoint_every=10 ** 6)
    if aug == "strong":
        cfg = replace(cfg, augment=AugmentConfig(p_jpeg=0.3, p_blur=0.3, p_rescale=0.3, p_noise=0.3))
    elif aug == "sharp":  # no blur, no down-and-up rescale (today's AugmentConfig default; JPEG and noise kept)
        cfg = replace(cfg, augment=AugmentConfig(p_blur=0.0, p_rescale=0.0))
    elif aug == "jpegonly":  # JPEG and flips only: no noise on real images either
        cfg = replace(cfg, augment=AugmentConfig(p_blur=0.0, p_rescale=0.0, p_noise=0.0))
    else:  # every augmentation at p = 0.1: the shipped default when the first variants were measured
        cfg = replace(cfg, augment=AugmentConfig(p_blur=0.1, p_rescale=0.1))
    t0 = time.time()
    det_dir = out / f"{variant}_{held}"
    if not (det_dir / "detector.json").is_file():  # a detector already trained is measured again, not retrained
        harden(net, "dcgan_d", arch, real, train_fams, det_dir, cfg, flip=False, log=lambda m: None, progress=False)
    det = load(det_dir)
    held_x = torch.cat([fam_splits[n].test for n in GROUPS[held]])
    rec = {"variant": variant, "held_out": held, "train_families": sorted(train_fams), "steps": args.steps,
           "arch": arch, "augment": aug, "threshold": det.spec.threshold,
           "seen_fakes_caught": float(np.mean(np.concatenate([_scores(det, s.test) for s in train_fams.values()])
                                              >= det.spec.threshold)),
           **held_out_metrics(det, real.test, held_x, args.bootstrap)}
    jr, jf = _scores(det, _jpeg(real.test)), _scores(det, _jpeg(held_x))
    rec["jpeg75_auc"] = float(auc(np.r_[np.zeros(len(jr)), np.ones(len(jf))], np.r_[jr, jf]))
    if variant == args.variants.split(",")[0]:  # the baseline depends on the fold only
        seen = torch.cat([s.train for s in train_fams.values()])
        pick = torch.randperm(len(seen), generator=torch.Generator().manual_seed(0))[:args.baseline_n]
        bl = create_baseline("frank_dct").fit(list(real.train[:args.baseline_n]), list(seen[pick]))
        br, bf = bl.score(list(real.test)), bl.score(list(held_x))
        rec["dct_baseline_auc"] = float(auc(np.r_[np.zeros(len(br)), np.ones(len(bf))], np.r_[br, bf]))
    rec["seconds"] = time.time() - t0
    return rec


def markdown(results: list[dict]) -> str:
    """One row per variant x held-out family, as in ``docs/generalisation.md``."""
    rows = ["| variant | steps | held out | AUC [95% CI] | caught @ val 1% FPR | FPR held-out reals | JPEG-75 AUC | DCT+LR AUC |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        dct = f"{r['dct_baseline_auc']:.3f}" if "dct_baseline_auc" in r else ""
        rows.append(f"| {r['variant']} | {r['steps']} | {r['held_out']} | {r['auc']:.3f} [{r['auc_ci'][0]:.3f}, "
                    f"{r['auc_ci'][1]:.3f}] | {r['caught']:.1%} | {r['fpr']:.2%} | {r['jpeg75_auc']:.3f} | {dct} |")
    return "\n".join(rows)


def main() -> None:
    from detector.train.splits import real_splits, split_tensor

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("/work/runs-families"))
    p.add_argument("--variants", default="plain,npr,npr_dct")
    p.add_argument("--held-out", default=",".join(GROUPS))
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--per-snapshot", type=int, default=500)
    p.add_argument("--real-limit", type=int, default=None)
    p.add_argument("--baseline-n", type=int, default=2000)
    p.add_argument("--bootstrap", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--table", nargs="*", type=Path, help="Print the markdown table of these result files and exit.")
    args = p.parse_args()
    if args.table:
        print(markdown([r for f in args.table for r in json.loads(f.read_text())]))
        return
    torch.set_num_threads(1)
    real, _ = real_splits("fashion-mnist:embedded", 28, 1, args.seed, 0.15, 0.15, args.real_limit)
    fams = [f for g in GROUPS.values() for f in g]
    fam_splits = {f: split_tensor(family_fakes(args.runs, f, args.per_snapshot, args.seed), args.seed + 7 + i, 0.15, 0.15)
                  for i, f in enumerate(fams)}
    print(f"real {real.sizes()}; fakes " + ", ".join(f"{f}={len(s.train)}/{len(s.val)}/{len(s.test)}"
                                                    for f, s in fam_splits.items()), flush=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else []
    done = {(r["variant"], r["held_out"], r["steps"]) for r in results}
    work = args.out.parent / (args.out.stem + "_detectors")
    for variant in args.variants.split(","):
        for held in args.held_out.split(","):
            if (variant, held, args.steps) in done:
                continue
            rec = run_fold(args, variant, held, real, fam_splits, work)
            results.append(rec)
            args.out.write_text(json.dumps(results, indent=1))
            print(f"{variant:18s} held-out {held:9s} AUC {rec['auc']:.3f} [{rec['auc_ci'][0]:.3f}, "
                  f"{rec['auc_ci'][1]:.3f}] caught {rec['caught']:.1%} FPR {rec['fpr']:.2%} JPEG75 AUC "
                  f"{rec['jpeg75_auc']:.3f}" + (f" DCT-LR {rec['dct_baseline_auc']:.3f}" if "dct_baseline_auc" in rec
                                                 else "") + f" ({rec['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
