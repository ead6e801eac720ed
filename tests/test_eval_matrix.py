"""Cross-generator matrix with a tiny trainer passed as the fit_detector callable, and the CLI."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from detector.artifact import Detector
from eval.matrix import FinetuneConfig, cross_generator_matrix, finetune_detector, split_train_test
from tests.corpus import save_pngs
from unmask.cli import main

TINY = FinetuneConfig(steps=40, batch_size=32, lr=2e-3, width=8, seed=0)


def _blocky(real: torch.Tensor) -> torch.Tensor:
    """A second 'generator': 4x nearest-neighbour up-sampling (blocky, a different artefact family)."""
    return F.interpolate(F.avg_pool2d(real, 4), scale_factor=4, mode="nearest")



@pytest.fixture(scope="module")
def gens(real_images, fake_images):
    return {"tconv": (list(fake_images[:96]), list(fake_images[400:440])),
            "blocky": (list(_blocky(real_images[100:196])), list(_blocky(real_images[440:480])))}


def test_matrix_with_a_tiny_trainer(real_images, gens):
    calls = []

    def fit(xr, xf):
        calls.append((tuple(xr.shape), tuple(xf.shape)))
        return finetune_detector(xr, xf, None, TINY)

    res = cross_generator_matrix(list(real_images[200:296]), list(real_images[400:440]), gens, fit, 28, 1,
                                 progress=False)
    assert calls == [((96, 1, 28, 28), (96, 1, 28, 28))] * 2  # one detector per generator, fixed-size inputs
    assert res.names == ["tconv", "blocky"]
    a = np.asarray(res.auc)
    assert a.shape == (2, 2) and ((a >= 0) & (a <= 1)).all()
    assert a[0, 0] > 0.95 and a[1, 1] > 0.8  # in-distribution cells are learnt
    assert res.n_train == {"tconv": 96, "blocky": 96} and res.n_test == {"real": 40, "tconv": 40, "blocky": 40}
    assert res.off_diagonal_mean() == pytest.approx((a[0, 1] + a[1, 0]) / 2)
    json.dumps(res.to_json())


def test_finetune_is_seeded_and_starts_from_a_base(real_images, fake_images, tmp_path):
    from detector.artifact import load

    xr, xf = real_images[:64], fake_images[:64]
    d1, d2 = finetune_detector(xr, xf, None, TINY), finetune_detector(xr, xf, None, TINY)
    assert isinstance(d1, Detector)
    for (k, v), (_, w) in zip(d1.net.state_dict().items(), d2.net.state_dict().items()):
        assert torch.equal(v, w), k
    d1.save(tmp_path / "base")
    base = load(tmp_path / "base")
    before = {k: v.clone() for k, v in base.net.state_dict().items()}
    tuned = finetune_detector(xr, xf, base, FinetuneConfig(steps=3, batch_size=16, lr=1e-3))
    assert tuned.spec.architecture == base.spec.architecture and tuned.spec.policy == base.spec.policy
    assert tuned.spec.provenance["matrix_finetune"]["steps"] == 3
    assert all(torch.equal(v, base.net.state_dict()[k]) for k, v in before.items())  # base untouched


def test_split_and_errors(real_images):
    tr, te = split_train_test(list(real_images[:10]), 0.3, seed=4)
    assert (len(tr), len(te)) == (7, 3)
    tr2, te2 = split_train_test(list(real_images[:10]), 0.3, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(te, te2))
    with pytest.raises(ValueError, match="at least 2 images"):
        split_train_test([real_images[0]])
    with pytest.raises(ValueError, match="at least 2 generators"):
        cross_generator_matrix([real_images[0]], [real_images[1]], {"a": ([], [])}, lambda a, b: None, 28, 1)


def test_eval_matrix_cli(tmp_path, real_images, fake_images):
    blocky = _blocky(real_images[300:340])
    save_pngs(tmp_path / "real", real_images[:40])
    save_pngs(tmp_path / "tconv", fake_images[:40])
    save_pngs(tmp_path / "blocky", blocky)
    out = tmp_path / "matrix"
    res = CliRunner().invoke(main, ["eval-matrix", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "tconv"),
                                    "--fake", str(tmp_path / "blocky"), "--out", str(out), "--steps", "30"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "matrix.json").read_text())
    assert m["names"] == ["tconv", "blocky"] and len(m["auc"]) == 2 and len(m["auc"][0]) == 2
    assert m["n_test"] == {"real": 20, "tconv": 20, "blocky": 20}
    assert (out / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "| tconv |" in (out / "matrix.md").read_text()
    r = CliRunner().invoke(main, ["eval-matrix", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "tconv"),
                                  "--out", str(out)])
    assert r.exit_code == 2 and "at least two --fake" in r.output


def test_eval_matrix_zoo_mode_hardens_the_run_discriminator(tmp_path):
    """--run: one fake set per zoo family, the run's discriminator hardened (detector.harden) per family."""
    from detector.atomic import save_safetensors, write_json
    from detector.nets import create_network
    from gan.generators import create_generator
    from gan.zoo import save_snapshot

    run = tmp_path / "run"
    run.mkdir()
    dargs = dict(in_channels=1, image_size=28, width=8, norm="batch")
    save_safetensors(create_network("dcgan_d", **dargs).state_dict(), run / "discriminator.safetensors")
    write_json(run / "config.json", {"data": "fashion-mnist:embedded", "image_size": 28, "channels": 1,
                                     "discriminator": {"network": "dcgan_d", "args": dargs}})
    for k, fam in enumerate(("dcgan", "upconv")):
        torch.manual_seed(k)
        save_snapshot(run, create_generator(fam, z_dim=16, width=8), f"{fam}_a", k, fam, {"z_dim": 16, "width": 8})
    out = tmp_path / "m"
    res = CliRunner().invoke(main, ["eval-matrix", "--run", str(run), "--out", str(out), "--steps", "5",
                                    "--per-family", "40"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "matrix.json").read_text())
    assert m["names"] == ["dcgan", "upconv"]
    assert m["fitting"]["method"].startswith("detector.harden")
    assert m["n_train"] == {"dcgan": 20, "upconv": 20} and m["n_test"]["real"] == 40
    assert not any(p.name.startswith("matrix-") for p in out.iterdir())  # work folders cleaned up
