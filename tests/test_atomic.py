"""detector.atomic: a write either lands completely or leaves the old file untouched."""
from __future__ import annotations

import json
import os

import pytest
import torch

from detector.atomic import atomic_open, save_safetensors, torch_save, write_bytes, write_json, write_text


def test_success_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "out.bin"  # parent folders are created
    write_bytes(target, b"\x00\x01payload")
    assert target.read_bytes() == b"\x00\x01payload"
    assert os.listdir(target.parent) == ["out.bin"]


def test_text_is_utf8_and_newlines_kept(tmp_path):
    target = tmp_path / "t.csv"
    write_text(target, "naïve,ok\r\nb,2\n")
    assert target.read_bytes() == "naïve,ok\r\nb,2\n".encode("utf-8")


def test_exception_mid_write_keeps_old_file(tmp_path):
    target = tmp_path / "report.json"
    write_json(target, {"version": 1})
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_open(target, "w") as f:
            f.write('{"version": 2, "half')
            raise RuntimeError("disk on fire")
    assert json.loads(target.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["report.json"]  # the temp file was removed


def test_interrupt_mid_write_of_new_file_leaves_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target) as f:
            f.write(b"partial")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_write_json_round_trips(tmp_path):
    obj = {"a": [1, 2.5, None, True], "b": {"nested": "ü"}, "c": ""}
    write_json(tmp_path / "x.json", obj)
    text = (tmp_path / "x.json").read_text(encoding="utf-8")
    assert json.loads(text) == obj and text.endswith("\n")


def test_overwrite_replaces_content(tmp_path):
    target = tmp_path / "f.txt"
    write_text(target, "old and longer")
    write_text(target, "new")
    assert target.read_text() == "new"


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="atomic_open supports modes 'w' and 'wb'"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_safetensors_and_torch_save(tmp_path):
    from safetensors.torch import load_file

    t = {"w": torch.arange(6, dtype=torch.float32).view(2, 3)[:, 1:]}  # non-contiguous view
    save_safetensors(t, tmp_path / "m.safetensors", metadata={"format": "test"})
    back = load_file(tmp_path / "m.safetensors")
    assert torch.equal(back["w"], t["w"])
    torch_save({"step": 3, "w": t["w"]}, tmp_path / "ckpt.pt")
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ck["step"] == 3 and torch.equal(ck["w"], t["w"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt", "m.safetensors"]


def test_permissions_like_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "new.bin", b"x")
        assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
        private = tmp_path / "private.bin"
        private.write_bytes(b"old")
        private.chmod(0o600)
        write_bytes(private, b"new")
        assert private.stat().st_mode & 0o777 == 0o600 and private.read_bytes() == b"new"
    finally:
        os.umask(old)
