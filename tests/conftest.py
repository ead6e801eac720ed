"""Shared fixtures: tiny sizes, fixed seeds, CPU only, no network."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def seed() -> int:
    torch.manual_seed(0)
    return 0
