"""detector.load refuses every malformed or hostile artifact with a message naming the file and problem.

Loading never unpickles: a pickle planted as model.safetensors is refused and its payload never runs.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detector
from detector.artifact import MAX_PARAMETERS, ArtifactError, Detector, DetectorSpec, spec_for_network
from detector.atomic import save_safetensors
from detector.nets import create_network

ARGS = {"in_channels": 1, "image_size": 28, "width": 8, "max_width": 16}


def _save(d: Path, **spec_kw) -> Path:
    torch.manual_seed(0)
    net = create_network("dcgan_d", **ARGS)
    Detector(net, spec_for_network("dcgan_d", ARGS, 28, 1, **spec_kw)).save(d)
    return d


@pytest.fixture
def art(tmp_path) -> Path:
    return _save(tmp_path / "det")


def _edit_json(d: Path, **changes) -> Path:
    cfg = json.loads((d / "detector.json").read_text())
    for k, v in changes.items():
        if v is _DELETE:
            del cfg[k]
        else:
            cfg[k] = v
    (d / "detector.json").write_text(json.dumps(cfg))
    return d / "detector.json"


_DELETE = object()


def _refused(d: Path) -> str:
    with pytest.raises(ArtifactError) as e:
        detector.load(d)
    return str(e.value)


def test_valid_artifact_loads(art):
    det = detector.load(art)
    assert isinstance(det, Detector) and det.spec.architecture == "dcgan_d"
    assert det.spec.unmask_version == detector.__version__ and det.spec.format_version == detector.artifact.FORMAT_VERSION
    assert set(os.listdir(art)) == {"detector.json", "model.safetensors"}  # no temp files left
    assert det.score_batch(torch.rand(2, 1, 28, 28)).shape == (2,)


def test_missing_directory(tmp_path):
    d = tmp_path / "nope"
    assert _refused(d) == f"{d}: not a detector directory (expected detector.json and model.safetensors inside)"


@pytest.mark.parametrize("name", ["detector.json", "model.safetensors"])
def test_missing_file(art, name):
    (art / name).unlink()
    assert _refused(art) == (f"{art / name}: missing file; a detector directory holds detector.json and "
                             "model.safetensors")


@pytest.mark.parametrize("text", ["{not json", '{"architecture": "dcgan_d",', "\xff\xfe"])
def test_invalid_json(art, text):
    (art / "detector.json").write_text(text, encoding="latin-1")
    assert _refused(art).startswith(f"{art / 'detector.json'}: not valid JSON (")


def test_json_not_an_object(art):
    (art / "detector.json").write_text("[1, 2, 3]")
    assert _refused(art) == f"{art / 'detector.json'}: expected a JSON object, got list"


def test_huge_json_number_and_deep_nesting(art):
    (art / "detector.json").write_text('{"input_size": ' + "9" * 5000 + "}")
    msg = _refused(art)  # Python >= 3.11 refuses the 5000-digit integer while parsing; older ones later
    assert "not valid JSON" in msg or "required field" in msg
    assert len(msg) < 400
    (art / "detector.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "not valid JSON" in _refused(art)


@pytest.mark.parametrize("field", ["architecture", "arch_args", "input_size", "channels", "mean", "std"])
def test_missing_required_field(art, field):
    cfg = _edit_json(art, **{field: _DELETE})
    assert _refused(art) == f"{cfg}: required field {field!r} is missing"


def test_missing_format_version(art):
    cfg = _edit_json(art, format_version=_DELETE)
    assert _refused(art) == f"{cfg}: field 'format_version' is missing or not an integer"


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("input_size", "28", "field 'input_size' must be int, got str '28'"),
        ("input_size", 28.0, "field 'input_size' must be int, got float 28.0"),
        ("channels", True, "field 'channels' must be int, got bool True"),   # bool is not an int here
        ("tile_topk", False, "field 'tile_topk' must be int, got bool False"),
        ("threshold", True, "field 'threshold' must be number, got bool True"),
        ("arch_args", [1], "field 'arch_args' must be dict, got list [1]"),
        ("mean", 0.5, "field 'mean' must be list, got float 0.5"),
        ("policy", 3, "field 'policy' must be str, got int 3"),
        ("provenance", "me", "field 'provenance' must be dict, got str 'me'"),
    ],
)
def test_wrong_typed_field(art, field, value, expected):
    cfg = _edit_json(art, **{field: value})
    assert _refused(art) == f"{cfg}: {expected}"


def test_extra_fields(art):
    cfg = _edit_json(art, evil="rm -rf /", another=1)
    assert _refused(art) == f"{cfg}: unknown field(s) another, evil"


def test_newer_format_version(art):
    v = detector.artifact.FORMAT_VERSION
    cfg = _edit_json(art, format_version=v + 1)
    assert _refused(art) == f"{cfg}: format version {v + 1} is newer than this unmask supports ({v}); upgrade unmask"
    cfg = _edit_json(art, format_version=0)
    assert _refused(art) == f"{cfg}: invalid format version 0"


@pytest.mark.parametrize("size", [31623, 10**9, 4, 0, -28])
def test_absurd_input_size(art, size):
    cfg = _edit_json(art, input_size=size)
    assert _refused(art) == f"{cfg}: input_size {size} outside the supported range [8, 1024]"


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "os.system", "resnet50", ""])
def test_unknown_or_path_like_architecture(art, name):
    cfg = _edit_json(art, architecture=name)
    assert _refused(art) == f"{cfg}: unknown architecture {name!r}; known: dcgan_d"


@pytest.mark.parametrize(
    "arch_args,expected",
    [
        ({**ARGS, "bogus": 1}, "architecture 'dcgan_d' rejects its arguments: "),
        ({**ARGS, "norm": "weird"}, "architecture 'dcgan_d' rejects its arguments: unknown norm 'weird'"),
        ({**ARGS, "width": 10**12}, "architecture 'dcgan_d' rejects its arguments: width must be in [1, 1024]"),
        ({**ARGS, "in_channels": 3}, "arch_args['in_channels'] = 3 contradicts channels = 1"),
        ({**ARGS, "image_size": 64}, "arch_args['image_size'] = 64 contradicts input_size = 28"),
        ({**ARGS, "norm": {"__class__": "x"}}, "arch_args['norm'] must be a short scalar, got dict"),
        ({**ARGS, "__init__": 1}, "architecture 'dcgan_d' rejects its arguments: "),
        ({**ARGS, "a-b": 1}, "arch_args key 'a-b' is not a valid argument name"),
    ],
)
def test_arch_args_rejected(art, arch_args, expected):
    cfg = _edit_json(art, arch_args=arch_args)
    assert _refused(art).startswith(f"{cfg}: {expected}")


def test_oversized_network_is_refused_before_allocation(art):
    # 1024 px, width 1024, max_width 2048: hundreds of millions of parameters (gigabytes)
    cfg = _edit_json(art, input_size=1024,
                     arch_args={"in_channels": 1, "image_size": 1024, "width": 1024, "max_width": 2048})
    msg = _refused(art)
    assert msg.startswith(f"{cfg}: architecture 'dcgan_d' with these arguments has ")
    assert msg.endswith(f"parameters, over the limit of {MAX_PARAMETERS}")


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("channels", 2, "channels must be 1 or 3, not 2"),
        ("mean", [0.5, 0.5], "mean must be 1 or 1 finite numbers, got [0.5, 0.5]"),
        ("std", [0.0], "std values must be positive"),
        ("policy", "stretch", "policy 'stretch' not one of ('resize', 'crop', 'tile')"),
        ("tile_aggregate", "median", "tile_aggregate 'median' not one of ('max', 'mean', 'topk_mean')"),
        ("tile_topk", 0, "tile_topk 0 out of range"),
        ("threshold", 1.5, "threshold 1.5 must be a probability in [0, 1]"),
        ("threshold", 10**400, "threshold 1000000000000000000000000000000000000... must be a probability"),
        ("temperature", 0, "temperature 0 must be in [0.001, 1000]"),
    ],
)
def test_out_of_range_values(art, field, value, expected):
    cfg = _edit_json(art, **{field: value})
    assert _refused(art).startswith(f"{cfg}: {expected}")


def test_nan_in_json_is_refused(art):
    (art / "detector.json").write_text((art / "detector.json").read_text().replace('"threshold": 0.5',
                                                                                 '"threshold": NaN'))
    assert "threshold nan must be a probability in [0, 1]" in _refused(art)


# ----------------------------------------------------------------------------- weights


def test_weights_of_wrong_shape(art):
    net = create_network("dcgan_d", **{**ARGS, "width": 4})
    save_safetensors(net.state_dict(), art / "model.safetensors")
    msg = _refused(art)
    assert msg == (f"{art / 'model.safetensors'}: weights do not match architecture 'dcgan_d': "
                   "features.0.weight has shape (4, 1, 4, 4), expected (8, 1, 4, 4)")


def test_weights_with_missing_and_extra_keys(art):
    state = create_network("dcgan_d", **ARGS).state_dict()
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(2)
    save_safetensors(state, art / "model.safetensors")
    assert _refused(art) == (f"{art / 'model.safetensors'}: weights do not match architecture 'dcgan_d': "
                             "missing ['head.bias'], unexpected ['extra.weight']")


def test_weights_of_wrong_dtype(art):
    state = create_network("dcgan_d", **ARGS).state_dict()
    state["head.weight"] = state["head.weight"].double()
    save_safetensors(state, art / "model.safetensors")
    assert _refused(art) == (f"{art / 'model.safetensors'}: tensor head.weight has dtype torch.float64, "
                             "expected torch.float32")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(art, bad):
    state = create_network("dcgan_d", **ARGS).state_dict()
    state["features.0.weight"][0, 0, 0, 0] = bad
    save_safetensors(state, art / "model.safetensors")
    assert _refused(art) == f"{art / 'model.safetensors'}: tensor features.0.weight contains NaN or infinite values"


def test_weights_file_far_too_large(art):
    with open(art / "model.safetensors", "r+b") as f:
        f.truncate(2 * 1024**3)  # sparse: 2 GB declared, no disk used
    msg = _refused(art)
    assert msg.startswith(f"{art / 'model.safetensors'}: 2147483648 bytes, far more than the ")
    assert msg.endswith("bytes of weights the architecture 'dcgan_d' holds")


def test_config_far_too_large(art):
    (art / "detector.json").write_text(" " * 1_000_001)
    assert _refused(art) == f"{art / 'detector.json'}: too large to be a detector config (over 1 MB)"


def test_garbage_weights(art):
    (art / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    assert _refused(art).startswith(f"{art / 'model.safetensors'}: not a valid safetensors file (")


class _Payload:
    """Unpickling this would create a marker file (stands for arbitrary code execution)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle0", "pickle2", "pickle5"])
def test_planted_pickle_is_refused_and_never_executed(art, tmp_path, how):
    marker = tmp_path / "PWNED"
    payload = {"head.weight": _Payload(str(marker))}
    target = art / "model.safetensors"
    if how == "torch.save":
        torch.save(payload, target)
    else:
        target.write_bytes(pickle.dumps(payload, protocol=int(how[-1])))
    msg = _refused(art)
    if how in ("torch.save", "pickle2", "pickle5"):
        assert msg == (f"{target}: is a pickle/zip file, not safetensors; refusing to load it "
                       "(loading pickles can execute code)")
    else:  # protocol 0 has no magic: it fails as safetensors, still without unpickling
        assert msg.startswith(f"{target}: not a valid safetensors file (")
    assert not marker.exists()
    # control: the payload really does create the marker when unpickled
    pickle.loads(pickle.dumps(_Payload(str(marker)))).close()
    assert marker.exists()


def test_spec_validates_at_construction():
    with pytest.raises(ArtifactError, match=r"spec: input_size 1000000000 outside the supported range"):
        Detector(create_network("dcgan_d", **ARGS), spec_for_network("dcgan_d", ARGS, 10**9, 1))


# ----------------------------------------------------------------------------- fuzzing

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=12,
)
_FIELDS = [f for f in DetectorSpec.__dataclass_fields__]
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("template") / "det")


def _outcome(d: Path) -> None:
    try:
        det = detector.load(d)
    except ArtifactError as e:
        assert str(e).startswith(str(d))
        return
    assert isinstance(det, Detector)
    out = det.score_batch(torch.rand(1, det.spec.channels, det.spec.input_size, det.spec.input_size))
    assert out.shape == (1,) and torch.isfinite(out).all()


@FUZZ
@given(
    edits=st.lists(st.tuples(st.sampled_from(_FIELDS + ["extra"]), st.one_of(st.just("<delete>"), _json)),
                   max_size=3),
    arg_edits=st.dictionaries(st.sampled_from(list(ARGS) + ["norm", "spectral_norm", "dropout", "x"]), _json,
                              max_size=2),
)
def test_fuzz_detector_json(template, edits, arg_edits):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(template, Path(tmp) / "det"))
        cfg = json.loads((d / "detector.json").read_text())
        cfg["arch_args"].update(arg_edits)
        for field, value in edits:
            if value == "<delete>":
                cfg.pop(field, None)
            else:
                cfg[field] = value
        (d / "detector.json").write_text(json.dumps(cfg))
        _outcome(d)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_detector_json_bytes(template, raw):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(template, Path(tmp) / "det"))
        (d / "detector.json").write_bytes(raw)
        _outcome(d)


@FUZZ
@given(
    mode=st.sampled_from(["random", "mutate"]),
    raw=st.binary(max_size=256),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_fuzz_weights_bytes(template, mode, raw, edits, cut):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(template, Path(tmp) / "det"))
        if mode == "random":
            data = raw
        else:
            buf = bytearray((d / "model.safetensors").read_bytes())
            header = int.from_bytes(buf[:8], "little") + 8
            for pos, byte in edits:  # aim most edits at the JSON header, where the structure lives
                buf[pos % header if pos % 3 else pos % len(buf)] = byte
            data = bytes(buf if cut is None else buf[: cut % (len(buf) + 1)])
        (d / "model.safetensors").write_bytes(data)
        _outcome(d)


def test_interrupted_overwrite_never_leaves_a_loadable_mix(art, monkeypatch):
    """Crash after the new weights landed but before the new config: the directory refuses to load."""
    import detector.artifact as artifact_mod

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(artifact_mod, "write_json", crash)
    torch.manual_seed(9)
    other = Detector(create_network("dcgan_d", **ARGS), spec_for_network("dcgan_d", ARGS, 28, 1, threshold=0.9))
    with pytest.raises(KeyboardInterrupt):
        other.save(art)
    assert _refused(art).endswith("detector.json: missing file; a detector directory holds detector.json and "
                                  "model.safetensors")
    monkeypatch.undo()
    other.save(art)  # a complete save afterwards loads, with the new spec
    assert detector.load(art).spec.threshold == 0.9


@pytest.mark.parametrize("args", [dict(in_channels=1, image_size=28),
                                  dict(in_channels=3, image_size=32, norm="instance"),
                                  dict(in_channels=1, image_size=28, norm="layer", spectral_norm=True)])
def test_logits_fast_path_matches_plain_network_and_tracks_weight_changes(args):
    """Detector.logits runs a channels-last copy on CPU: same scores as the plain net (<= 1e-6),
    rebuilt when the weights change, and the user's net is left untouched (NCHW, saveable)."""
    from detector.preprocess import normalize

    torch.manual_seed(0)
    net = create_network("dcgan_d", **args)
    det = Detector(net, spec_for_network("dcgan_d", args, args["image_size"], args["in_channels"]))
    x = torch.rand(16, args["in_channels"], args["image_size"], args["image_size"])

    def plain():
        with torch.inference_mode():
            return net(normalize(x, 0.5, 0.5))

    got = det.logits(x)
    assert det._inference_net() is not net
    assert torch.allclose(got, plain(), rtol=1e-5, atol=1e-5)
    assert (torch.sigmoid(got) - torch.sigmoid(plain())).abs().max() <= 1e-6
    with torch.no_grad():
        net.head.bias.add_(3.0)  # in-place weight change: the cached copy must follow
    moved = det.logits(x)
    assert torch.allclose(moved, plain(), rtol=1e-5, atol=1e-5)
    assert torch.allclose(moved - got, torch.full_like(got, 3.0), atol=1e-4)
    assert all(p.is_contiguous() for p in net.parameters())
    net.train()
    assert det._inference_net() is net  # training mode: no copy
