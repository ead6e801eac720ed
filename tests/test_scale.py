"""Scale-out on 2 CPU processes with a real gloo process group (torch.multiprocessing spawn, and one
torchrun subprocess): DDP GAN training and hardening leave identical weights on both ranks, rank 0
alone writes, a GAN run resumes under a different number of processes, and a sharded scan merges
into one output with every file exactly once (resuming per shard)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.gan_helpers import tiny_config
from tests.scale_helpers import spawn


def _state(module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _gan_job(rank: int, out_full: str, out_part: str) -> dict:
    import gan.trainer as T
    from detector import distributed

    distributed.init(torch.device("cpu"))  # the command's entry does this; train() itself never does
    runs = []

    class Spy(T.Trainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            runs.append(self)

    T.Trainer = Spy
    T.train(tiny_config(steps=4, batch_size=8, checkpoint_every=2), out_full)
    full = runs[-1]
    T.train(tiny_config(steps=4, batch_size=8, checkpoint_every=2), out_part, stop_at=2)
    return {"G": _state(full.G), "D": _state(full.D), "step": full.step}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, tiny_detector, real_images, fake_images):
    """GAN training, hardening and a scan, each on the same 2 processes (one spawn: start-up is the cost)."""
    d = tmp_path_factory.mktemp("ddp")
    folder = _corpus(d / "imgs", real_images)
    (d / "res").mkdir()
    jobs = [("gan", _gan_job, (str(d / "gan_full"), str(d / "gan_part"))),
            ("harden", _harden_job, (real_images[:160], fake_images[:160], str(d / "det"))),
            ("scan", _scan_job, (str(folder), str(tiny_detector), str(d / "res" / "scan.jsonl")))]
    ranks = spawn(jobs, d / "log")
    return d, {name: [r[name] for r in ranks] for name, _, _ in jobs}


def test_gan_ddp_two_ranks_identical_weights_rank0_writes(two_ranks):
    d, jobs = two_ranks
    full, part = d / "gan_full", d / "gan_part"
    ranks = jobs["gan"]
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
    from gan.rundir import RunDir
    from gan.trainer import train

    assert RunDir(part).latest_checkpoint().name == "ckpt_0000002.pt"
    res = train(tiny_config(steps=4, batch_size=8, checkpoint_every=2), part, resume=True)
    assert res.steps == 4 and (part / "generator.safetensors").is_file()
    recs = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["type"] == "train"] == [2, 4]


def test_device_helpers_on_cpu(capsys):
    from detector.device import amp_enabled, autocast, resolve_device, to_channels_last
    from detector.distributed import all_reduce_scalars, local_rank, shard, unwrap, wrap_ddp

    cpu = resolve_device("cpu")
    # auto: the (local rank's) GPU where there is one, else the CPU; this test passes on either machine
    expected = torch.device("cuda", local_rank() % torch.cuda.device_count()) if torch.cuda.is_available() else cpu
    assert resolve_device("auto") == expected
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


# ---------------------------------------------------------------------------- scan


def _scan_job(rank: int, folder: str, det_dir: str, out: str) -> dict:
    from detector import distributed
    from detector.artifact import load
    from detector.scan import ScanConfig, scan

    distributed.init(torch.device("cpu"))
    from detector.scan import ScanOutputError

    r = scan([folder], load(det_dir), out, ScanConfig(batch_size=4, workers=0, progress=False, top=3))
    try:  # a second scan into the same output without --resume is refused on every rank
        scan([folder], load(det_dir), out, ScanConfig(workers=0, progress=False))
        refused = ""
    except ScanOutputError as e:
        refused = str(e)
    return {"n_files": r.n_files, "n_new": r.n_new, "n_errors": r.n_errors, "top": r.top, "refused": refused}


def _corpus(root, real_images, n: int = 30):
    from tests.corpus import save_pngs

    root.mkdir()
    save_pngs(root, real_images[:n], "img_{i:03d}.png")
    (root / "broken.png").write_bytes(b"not an image")
    return root


def test_scan_two_ranks_one_merged_output_every_file_once(two_ranks, tiny_detector, tmp_path):
    from detector.artifact import load
    from detector.files import list_files
    from detector.scan import ScanConfig, parts_dir, read_rows, scan

    d, jobs = two_ranks
    folder, out = d / "imgs", d / "res" / "scan.jsonl"
    ranks = jobs["scan"]
    rows = read_rows(out)
    listed = list_files([folder])
    assert [r["path"] for r in rows] == listed and len(listed) == 31  # every file once, single-process order
    assert [r["label"] for r in rows].count("error") == 1
    assert not parts_dir(out).exists() and sorted(p.name for p in out.parent.iterdir()) == ["scan.jsonl"]
    r0, r1 = ranks[0]["result"], ranks[1]["result"]
    assert (r0["n_files"], r0["n_new"], r0["n_errors"]) == (31, 31, 1) and len(r0["top"]) == 3
    assert "pass --resume" in r0["refused"] and "pass --resume" in r1["refused"]
    # rank 1 wrote only its part file (header), rank 0 its part and the merged output
    assert all(str(parts_dir(out)) in w for w in ranks[1]["writes"]) and ranks[1]["writes"]
    assert str(out) in ranks[0]["writes"]
    # the same scores as a single-process scan
    single = scan([folder], load(tiny_detector), tmp_path / "single.jsonl", ScanConfig(workers=0, progress=False))
    assert single.n_files == 31 and read_rows(tmp_path / "single.jsonl") == rows


def test_cli_torchrun_scan_resumes_each_shard(tmp_path, tiny_detector, real_images):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from detector.files import list_files
    from detector.scan import parts_dir, read_rows

    from tests.scale_helpers import free_port

    folder = _corpus(tmp_path / "imgs", real_images, n=20)
    out = tmp_path / "scan.jsonl"
    listed = list_files([folder])
    # an interrupted 2-process scan: part of rank 1 holds two rows (one with a marker score) and a torn line
    pdir = parts_dir(out)
    pdir.mkdir()
    keep = [{"path": listed[1], "score": 0.123456, "label": "real", "threshold": 0.5, "error": None,
             "policy": "tile", "n_tiles": 1, "width": 28, "height": 28},
            {"path": listed[3], "score": 0.654321, "label": "fake", "threshold": 0.5, "error": None,
             "policy": "tile", "n_tiles": 1, "width": 28, "height": 28}]
    (pdir / "rank-00001-of-00002.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep) + '{"path": "x')
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "unmask", "scan", str(folder), "--detector", str(tiny_detector), "--out", str(out),
           "--workers", "0", "--quiet"]
    p = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr[-2000:]  # done, with one unreadable file (rank 0's exit code 1)
    assert p.stdout.count("files: 21 (19 scanned now, 2 from before)") == 1  # rank 0 alone reports
    rows = read_rows(out)
    assert [r["path"] for r in rows] == listed
    assert rows[1]["score"] == 0.123456 and rows[3]["score"] == 0.654321  # resumed rows kept, not rescanned
    assert not pdir.exists()


# ---------------------------------------------------------------------------- hardening


def _harden_job(rank: int, real, fake, out: str) -> dict:
    from detector import distributed
    from detector.nets import create_network
    from detector.train.harden import HardenConfig, harden
    from detector.train.splits import split_tensor

    distributed.init(torch.device("cpu"))  # the entry point joins the group; harden only uses it
    torch.manual_seed(0)
    net = create_network("dcgan_d", in_channels=1, image_size=28, width=8, norm="batch")
    cfg = HardenConfig(steps=6, batch_size=16, checkpoint_every=3, replay_per_generator=16, eval_batch=256)
    res = harden(net, "dcgan_d", dict(in_channels=1, image_size=28, width=8, norm="batch"),
                 split_tensor(real, 0), {"g": split_tensor(fake, 1)}, out, cfg, log=lambda m: None, progress=False)
    return {"net": _state(net), "auc": res.test.auc, "threshold": res.threshold}


def test_harden_ddp_two_ranks_identical_weights_rank0_writes(two_ranks):
    from detector.artifact import load

    d, jobs = two_ranks
    out = d / "det"
    ranks = jobs["harden"]
    r0, r1 = ranks[0]["result"], ranks[1]["result"]
    assert r0["net"].keys() == r1["net"].keys()
    for k in r0["net"]:
        assert torch.equal(r0["net"][k], r1["net"][k]), f"{k} differs between ranks"
    assert r0["threshold"] == r1["threshold"] and r0["auc"] == r1["auc"]  # same weights, same calibration
    assert ranks[1]["writes"] == []
    names = {p.split("/")[-1] for p in ranks[0]["writes"]}
    assert {"model.safetensors", "detector.json", "harden.pt", "harden_metrics.json"} <= names
    det = load(out)
    assert all(torch.equal(det.net.state_dict()[k], r0["net"][k]) for k in r0["net"])
