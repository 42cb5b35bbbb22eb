"""Shared fixtures: the repo root on sys.path, and the devices to run on."""

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

# Every op test runs on the CPU and, where there is one, on a CUDA device.
DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=needs_cuda)]
