"""Export: ONNX (dynamic batch) and torch.export .pt2 match the native detector within 1e-4."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import detector
from detector.export import ExportedDetector, export, run_onnx, run_pt2


@pytest.fixture(scope="module")
def calibrated(tiny_detector, tmp_path_factory):
    """The fixture detector with a non-trivial temperature and threshold (so both are exercised)."""
    det = detector.load(tiny_detector).with_spec(temperature=2.5, threshold=0.7)
    out = tmp_path_factory.mktemp("calibrated")
    det.save(out)
    return detector.load(out)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_parity_and_dynamic_batch(fmt, calibrated, real_images, fake_images, tmp_path):
    out = tmp_path / f"det.{fmt}"
    r = export(calibrated, out, fmt, real=real_images[:24])
    assert r.max_abs_diff <= 1e-4 and r.n_inputs == 28
    run = run_onnx if fmt == "onnx" else run_pt2
    for b in (1, 7, 65):                                     # batch sizes other than the example's
        x = torch.cat([real_images, fake_images])[torch.randperm(1024, generator=torch.Generator().manual_seed(b))[:b]]
        score, logit = run(out, x)
        assert score.shape == (b,) and logit.shape == (b,)
        assert float((score - calibrated.score_batch(x)).abs().max()) <= 1e-4
        assert float((logit - calibrated.logits(x) / 2.5).abs().max()) <= 1e-4
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert side["input"]["shape"] == ["B", 1, 28, 28] and side["threshold"] == 0.7 and side["policy"] == "tile"


def test_bare_onnx_with_documented_preprocessing(calibrated, tmp_path):
    """What docs/detector.md tells a user without unmask: PIL -> grey -> [0,1] -> (B,1,28,28) -> score."""
    import onnxruntime as ort
    from PIL import Image

    out = tmp_path / "det.onnx"
    export(calibrated, out, "onnx")
    img = Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 251).astype(np.uint8))
    x = (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[None, None]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert sess.get_inputs()[0].shape[1:] == [1, 28, 28]
    score = sess.run(["score"], {"image": x})[0]
    assert abs(float(score[0]) - calibrated.score_batch(torch.from_numpy(x))[0].item()) <= 1e-4
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["unmask.threshold"] == "0.7" and meta["unmask.input_range"] == "[0, 1]"


def test_export_refuses_bad_format(calibrated, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        export(calibrated, tmp_path / "x.ts", "torchscript")
    assert torch.allclose(ExportedDetector(calibrated)(torch.zeros(2, 1, 28, 28))[0],
                          calibrated.score_batch(torch.zeros(2, 1, 28, 28)), atol=1e-6)


def test_cli_export(calibrated, tmp_path):
    from click.testing import CliRunner

    from unmask.cli import main

    spec_dir = tmp_path / "d"
    calibrated.save(spec_dir)
    res = CliRunner().invoke(main, ["export", str(spec_dir), "--format", "pt2", "--out", str(tmp_path / "m.pt2")])
    assert res.exit_code == 0, res.output
    assert "max |score diff|" in res.output and (tmp_path / "m.pt2").is_file()


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_parity_with_npr_and_spectral_branches(fmt, real_images, fake_images, tmp_path):
    """The NPR residue and the DCT branch are in the exported graph: parity <= 1e-4, arch args in the artifact."""
    from detector.artifact import Detector, spec_for_network
    from detector.nets import create_network
    from detector.train.loop import fit_bce

    torch.manual_seed(0)
    args = dict(in_channels=1, image_size=28, width=8, norm="batch", residual="both", spectral=True)
    net = create_network("dcgan_d", **args)
    x = torch.cat([real_images[:64], fake_images[:64]])
    fit_bce(net, x, torch.cat([torch.zeros(64), torch.ones(64)]), steps=5, batch_size=32, lr=2e-3, mean=[0.5], std=[0.5])
    Detector(net, spec_for_network("dcgan_d", args, 28, 1, policy="resize")).save(tmp_path / "det")
    det = detector.load(tmp_path / "det")
    assert det.spec.arch_args["residual"] == "both" and det.spec.arch_args["spectral"] is True
    out = tmp_path / f"det.{fmt}"
    r = export(det, out, fmt, real=real_images[:24])
    assert r.max_abs_diff <= 1e-4
    run = run_onnx if fmt == "onnx" else run_pt2
    score, _ = run(out, fake_images[:9])
    assert float((score - det.score_batch(fake_images[:9])).abs().max()) <= 1e-4
