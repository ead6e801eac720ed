"""Scale-out on 2 CPU processes with a real gloo process group: DDP GAN training keeps both ranks'
weights identical, rank 0 alone writes, and a run resumes under a different number of processes."""
from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from tests.gan_helpers import tiny_config
from tests.scale_helpers import spawn


def _state(module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _gan_job(rank: int, out_full: str, out_part: str) -> dict:
    import gan.trainer as T

    runs = []

    class Spy(T._Run):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            runs.append(self)

    T._Run = Spy
    T.train(tiny_config(steps=4, batch_size=8, checkpoint_every=2), out_full)
    full = runs[-1]
    T.train(tiny_config(steps=4, batch_size=8, checkpoint_every=2), out_part, stop_at=2)
    return {"G": _state(full.G), "D": _state(full.D), "step": full.step}


def test_gan_ddp_two_ranks_identical_weights_rank0_writes(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    ranks = spawn(_gan_job, (str(full), str(part)), tmp_path / "log")
    r0, r1 = ranks[0]["result"], ranks[1]["result"]
    assert r0["step"] == r1["step"] == 4
    for net in ("G", "D"):  # parameters and BatchNorm buffers alike
        assert r0[net].keys() == r1[net].keys()
        for k in r0[net]:
            assert torch.equal(r0[net][k], r1[net][k]), f"{net}.{k} differs between ranks"
    # what rank 0 saved is what both ranks hold
    saved = load_file(full / "discriminator.safetensors")
    assert all(torch.equal(saved[k], r0["D"][k]) for k in saved)
    # rank 0 alone wrote files
    assert ranks[1]["writes"] == []
    names = {p.split("/")[-1] for p in ranks[0]["writes"]}
    assert {"config.json", "metrics.jsonl", "discriminator.safetensors", "generator.safetensors",
            "ckpt_0000004.pt"} <= names
    # the metrics are global-batch means: one record per health step, written once
    recs = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["type"] == "train"] == [2, 4]

    # resume the 2-process run (stopped at step 2) in this single process: the checkpoint holds no per-rank state
    from gan.trainer import latest_checkpoint, train

    assert latest_checkpoint(part).name == "ckpt_0000002.pt"
    res = train(tiny_config(steps=4, batch_size=8, checkpoint_every=2), part, resume=True)
    assert res.steps == 4 and (part / "generator.safetensors").is_file()
    recs = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["type"] == "train"] == [2, 4]


def test_device_helpers_on_cpu(capsys):
    import pytest

    from detector.device import amp_enabled, autocast, resolve_device, to_channels_last
    from detector.distributed import all_reduce_scalars, shard, unwrap, wrap_ddp

    cpu = resolve_device("cpu")
    assert resolve_device("auto") == cpu  # no GPU on the test machines
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu7")
    assert amp_enabled(cpu, True) is False
    assert "--amp ignored on cpu" in capsys.readouterr().err
    assert amp_enabled(cpu, False) is False and capsys.readouterr().err == ""
    net = torch.nn.Conv2d(1, 2, 3)
    assert to_channels_last(net, cpu) is net and net.weight.is_contiguous()
    with autocast(cpu, True):
        assert net(torch.zeros(1, 1, 4, 4)).dtype == torch.float32
    assert wrap_ddp(net, cpu) is net and unwrap(net) is net  # not distributed: the plain module
    assert all_reduce_scalars({"a": 1.5, "b": None}) == {"a": 1.5, "b": None}
    items = list(range(11))
    shares = [shard(items, r, 3) for r in range(3)]
    assert sorted(sum(shares, [])) == items and shares[1] == [1, 4, 7, 10]
