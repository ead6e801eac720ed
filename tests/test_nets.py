"""Every registered detector network builds, runs, survives save -> load bit-for-bit, and flips exactly."""
from __future__ import annotations

import pytest
import torch

import detector
from detector.artifact import Detector, spec_for_network
from detector.nets import NETWORKS, ConvDiscriminator, create_network, flip_head
from detector.registry import Registry

SMALL = {"dcgan_d": {"width": 8, "max_width": 32}}  # keep registered networks tiny in tests


def _args(name: str, size: int, channels: int, **extra) -> dict:
    return {"in_channels": channels, "image_size": size, **SMALL.get(name, {}), **extra}


@pytest.mark.parametrize("name", NETWORKS.names())
@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_builds_and_outputs_one_logit_per_image(name, size, channels):
    torch.manual_seed(0)
    net = create_network(name, **_args(name, size, channels)).eval()
    out = net(torch.randn(3, channels, size, size))
    assert out.shape == (3,) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert net.head.out_features == 1


@pytest.mark.parametrize("name", NETWORKS.names())
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_save_load_round_trip_bit_for_bit(tmp_path, name, spectral_norm):
    torch.manual_seed(1)
    args = _args(name, 32, 3, spectral_norm=spectral_norm)
    net = create_network(name, **args)
    net.train()
    net(torch.randn(4, 3, 32, 32))  # move BatchNorm running stats / spectral-norm vectors off init
    det = Detector(net, spec_for_network(name, args, 32, 3, threshold=0.3, provenance={"seed": 1}))
    det.save(tmp_path)
    back = detector.load(tmp_path)
    assert back.spec == det.spec
    a, b = det.net.state_dict(), back.net.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    x = torch.rand(5, 3, 32, 32)
    assert torch.equal(det.logits(x), back.logits(x))
    assert torch.equal(Detector.load(tmp_path).score_batch(x), det.score_batch(x))


@pytest.mark.parametrize("name", NETWORKS.names())
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_flip_head_negates_logits_exactly(name, spectral_norm):
    torch.manual_seed(2)
    net = create_network(name, **_args(name, 28, 1, spectral_norm=spectral_norm)).eval()
    x = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        before = net(x)
        flip_head(net)
        after = net(x)
        assert torch.equal(after, -before)
        flip_head(net)
        assert torch.equal(net(x), before)  # flipping twice is the identity


def test_flip_head_survives_training_steps_under_spectral_norm():
    """After a flip, the power iteration keeps sigma positive: the sign stays flipped in training."""
    torch.manual_seed(3)
    net = create_network("dcgan_d", **_args("dcgan_d", 28, 1, spectral_norm=True, norm="none"))
    x = torch.randn(4, 1, 28, 28)
    net.train()
    with torch.no_grad():
        before = net(x)
        flip_head(net)
        after = net(x)  # one more power-iteration step refines sigma slightly
    assert torch.equal(torch.sign(after), -torch.sign(before))
    assert torch.allclose(after, -before, rtol=0.01, atol=1e-3)


def test_feature_shape_and_forward_features():
    net = ConvDiscriminator(3, 64, width=8, max_width=16)
    f = net.forward_features(torch.zeros(2, 3, 64, 64))
    assert f.shape == (2, *net.feature_shape) and net.feature_shape[1] <= 7


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"in_channels": 2}, "in_channels must be 1 or 3, not 2"),
        ({"image_size": 4}, r"image_size must be in \[8, 1024\], not 4"),
        ({"width": 10**9}, r"width must be in \[1, 1024\]"),
        ({"norm": "group"}, "unknown norm 'group'"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\), not 1.5"),
    ],
)
def test_invalid_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_network("dcgan_d", **kwargs)


def test_registry_refuses_duplicates_and_bad_names():
    reg: Registry = Registry("thing")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        reg.register("a")(lambda: 2)
    with pytest.raises(ValueError, match=r"invalid thing name '\.\./x'"):
        reg.register("../x")
    with pytest.raises(KeyError, match="unknown thing 'b'; known: a"):
        reg.create("b")
    assert reg.names() == ["a"] and "a" in reg and reg.create("a") == 1


@pytest.mark.parametrize("residual", ["npr", "both"])
@pytest.mark.parametrize("spectral", [False, True])
def test_trace_options_change_what_the_network_sees(residual, spectral):
    """The NPR residue removes anything constant on 2x2 blocks; the DCT branch adds 64 features before the head."""
    from detector.nets import npr_residual

    torch.manual_seed(0)
    net = create_network("dcgan_d", width=8, residual=residual, spectral=spectral).eval()
    base = create_network("dcgan_d", width=8).eval()
    assert net.head.in_features == base.head.in_features + (64 if spectral else 0)
    assert net.features[0].in_channels == (2 if residual == "both" else 1)
    x = torch.rand(4, 1, 28, 28)
    blocky = torch.nn.functional.interpolate(torch.rand(4, 1, 14, 14), scale_factor=2.0, mode="nearest")
    assert float(npr_residual(blocky).abs().max()) == 0.0 and float(npr_residual(x).abs().max()) > 0.1
    if residual == "npr" and not spectral:  # the image itself never reaches the convolutions
        assert torch.allclose(net(blocky), net(blocky + 0.3), atol=1e-5)
    assert net(x).shape == (4,) and torch.isfinite(net(x)).all()
    z, feats = net.forward_with_features(x)  # what scoring and the domain guard run: the same logits
    assert torch.equal(z, net(x)) and feats.shape == (4, 2 * net.forward_features(x).shape[1])


def test_spectral_branch_is_the_orthonormal_dct():
    from scipy.fft import dctn

    from detector.nets import dct_matrix

    x = torch.rand(28, 28, dtype=torch.float64)
    m = dct_matrix(28).double()
    assert torch.allclose(m @ x @ m.T, torch.from_numpy(dctn(x.numpy(), norm="ortho")), atol=1e-5)


def test_trace_options_are_checked():
    with pytest.raises(ValueError, match="unknown residual 'blur'"):
        create_network("dcgan_d", residual="blur")
    with pytest.raises(ValueError, match="even image_size"):
        create_network("dcgan_d", image_size=27, residual="npr")
